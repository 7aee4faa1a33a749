#!/usr/bin/env python3
"""Render a yardstick run (peers.sh's results.csv) as an SVG chart: each gateway row beside its
HAProxy twin, req/s (median, with the min..max of the runs as a whisker) and p99 latency.

usage: bench/chart.py RESULTS_CSV OUT_SVG [TITLE]

Pairs drawn (a pair is skipped when neither row was measured):
  gw-plain/haproxy, gw-ratelimit/haproxy-ratelimit, gw-hs256/haproxy-jwt-hs256,
  gw-rs256/haproxy-jwt-rs256, gw-es256/haproxy-jwt-es256, gw-apikey/haproxy-apikey
The "direct" row (no proxy) is drawn as a dashed reference line when present.
Standard library only, so it runs wherever the yardstick does.
"""
import csv
import statistics as st
import sys
from xml.sax.saxutils import escape

PAIRS = [
    ("plain", "gw-plain", "haproxy"),
    ("rate limit", "gw-ratelimit", "haproxy-ratelimit"),
    ("JWT HS256", "gw-hs256", "haproxy-jwt-hs256"),
    ("JWT RS256", "gw-rs256", "haproxy-jwt-rs256"),
    ("JWT ES256", "gw-es256", "haproxy-jwt-es256"),
    ("API key", "gw-apikey", "haproxy-apikey"),
]
GW, HA = "#2b6cb0", "#c05621"
BAR_H, GAP, LABEL_W, PANEL_W, TOP = 14, 12, 110, 330, 56


def load(path):
    data = {}
    for rec in csv.DictReader(open(path)):
        try:
            rps, p99 = float(rec["rps"]), float(rec["p99_ms"])
        except (KeyError, ValueError):
            continue
        data.setdefault(rec["row"], []).append((rps, p99))
    return {row: summary(runs) for row, runs in data.items()}


def summary(runs):
    rps = [r for r, _ in runs]
    return {
        "rps": st.median(rps),
        "lo": min(rps),
        "hi": max(rps),
        "p99": st.median(p for _, p in runs),
        "runs": len(runs),
    }


def bars(x0, y, width, value, scale, color, label, whisker=None):
    w = max(1.0, value * scale)
    out = [f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{color}"/>']
    end = x0 + w
    if whisker:
        lo, hi = (x0 + v * scale for v in whisker)
        mid = y + BAR_H / 2
        out.append(f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="#1a202c"/>')
        for x in (lo, hi):
            out.append(f'<line x1="{x:.1f}" y1="{mid - 4}" x2="{x:.1f}" y2="{mid + 4}" stroke="#1a202c"/>')
        end = max(end, hi)
    text_x = min(end + 4, x0 + width - 60)
    out.append(f'<text x="{text_x:.1f}" y="{y + BAR_H - 3}" class="v">{escape(label)}</text>')
    return out


def render(data, title):
    pairs = [p for p in PAIRS if p[1] in data or p[2] in data]
    if not pairs:
        raise SystemExit("chart.py: no gateway or HAProxy rows in the results")
    rows = [data.get(r) for _, g, h in pairs for r in (g, h)]
    max_rps = max([r["hi"] for r in rows if r] + [data.get("direct", {}).get("rps", 0)])
    max_p99 = max(r["p99"] for r in rows if r)
    s_rps, s_p99 = (PANEL_W - 110) / max_rps, (PANEL_W - 70) / max_p99
    height = TOP + len(pairs) * (2 * BAR_H + GAP) + 40
    width = LABEL_W + 2 * PANEL_W + 20
    x_rps, x_p99 = LABEL_W, LABEL_W + PANEL_W + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        "<style>.v{fill:#1a202c}.h{font-weight:bold;font-size:12px}.t{font-size:13px;font-weight:bold}</style>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="18" class="t">{escape(title)}</text>',
        f'<text x="{x_rps}" y="42" class="h">requests/s (median, whisker = min..max of runs)</text>',
        f'<text x="{x_p99}" y="42" class="h">p99 latency, ms (median of runs)</text>',
    ]
    for i, (label, g, h) in enumerate(pairs):
        y = TOP + i * (2 * BAR_H + GAP)
        out.append(f'<text x="10" y="{y + BAR_H + 4}" class="v">{escape(label)}</text>')
        for j, (row, color) in enumerate(((g, GW), (h, HA))):
            r = data.get(row)
            yy = y + j * BAR_H
            if not r:
                out.append(f'<text x="{x_rps}" y="{yy + BAR_H - 3}" class="v">{row}: not measured</text>')
                continue
            ratio = ""
            if j == 0 and data.get(h):
                ratio = f"  ({r['rps'] / data[h]['rps']:.2f}x)"
            out += bars(x_rps, yy, PANEL_W, r["rps"], s_rps, color, f"{r['rps']:,.0f}{ratio}", (r["lo"], r["hi"]))
            out += bars(x_p99, yy, PANEL_W, r["p99"], s_p99, color, f"{r['p99']:.2f}")
    if "direct" in data:
        x = x_rps + data["direct"]["rps"] * s_rps
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{height - 34}" stroke="#718096" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x - 30:.1f}" y="{height - 22}" class="v">direct {data["direct"]["rps"]:,.0f}</text>')
    ly = height - 10
    out.append(f'<rect x="{x_p99}" y="{ly - 9}" width="10" height="10" fill="{GW}"/>')
    out.append(f'<text x="{x_p99 + 14}" y="{ly}" class="v">portcullis</text>')
    out.append(f'<rect x="{x_p99 + 90}" y="{ly - 9}" width="10" height="10" fill="{HA}"/>')
    out.append(f'<text x="{x_p99 + 104}" y="{ly}" class="v">HAProxy twin</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    title = sys.argv[3] if len(sys.argv) > 3 else "portcullis vs HAProxy (peers.sh)"
    svg = render(load(sys.argv[1]), title)
    with open(sys.argv[2], "w") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
