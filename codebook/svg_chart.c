/* svg_chart.c — hand-written SVG line chart (svg_chart.h): layout, "nice" linear ticks or
 * decade ticks on a log scale, polylines with markers, legend. Text is XML-escaped. */
#include <math.h>
#include <string.h>

#include "svg_chart.h"

enum { W = 940, H = 540, LEFT = 84, RIGHT = 230, TOP = 56, BOTTOM = 64 };

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
                                     "#393b79", "#637939", "#843c39", "#7b4173"};
enum { N_COLORS = sizeof COLORS / sizeof COLORS[0] };

static void put_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

typedef struct scale {
    int log;
    double lo, hi, floor;   /* data range drawn (log: log10 of it) */
} scale;

static double nice_step(double span) {
    double raw = span / 6.0, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static int data_range(const kvq_chart *c, double *mn, double *mx, double *min_pos) {
    int any = 0;
    *mn = INFINITY; *mx = -INFINITY; *min_pos = INFINITY;
    for (size_t s = 0; s < c->n_series; s++)
        for (size_t i = 0; i < c->n_x; i++) {
            double y = c->series[s].y[i];
            if (!isfinite(y)) continue;
            any = 1;
            if (y < *mn) *mn = y;
            if (y > *mx) *mx = y;
            if (y > 0 && y < *min_pos) *min_pos = y;
        }
    return any;
}

static scale make_scale(const kvq_chart *c) {
    double mn, mx, min_pos;
    scale s = {0};
    if (!data_range(c, &mn, &mx, &min_pos)) { s.lo = 0; s.hi = 1; return s; }
    s.log = c->log_y == 1 || (c->log_y < 0 && isfinite(min_pos) && mx / min_pos > 30.0);
    if (s.log && isfinite(min_pos) && mx > 0) {
        s.floor = c->log_floor > 0 ? c->log_floor : min_pos / 10.0;
        double lo = mn > s.floor ? mn : s.floor;
        s.lo = floor(log10(lo));
        s.hi = ceil(log10(mx));
        if (s.hi <= s.lo) s.hi = s.lo + 1;
        return s;
    }
    s.log = 0;
    double lo = mn < 0 ? mn : 0, hi = mx > 0 ? mx : 0;
    if (hi - lo <= 0) hi = lo + 1;
    double st = nice_step(hi - lo);
    s.lo = floor(lo / st) * st;
    s.hi = ceil(hi / st) * st;
    return s;
}

static double y_px(const scale *s, double y, int *clamped) {
    double v = y;
    *clamped = 0;
    if (s->log) {
        if (v < s->floor) { v = s->floor; *clamped = 1; }
        v = log10(v);
    }
    return TOP + (H - TOP - BOTTOM) * (1.0 - (v - s->lo) / (s->hi - s->lo));
}

static double x_px(const kvq_chart *c, size_t i) {
    double w = W - LEFT - RIGHT;
    return LEFT + w * ((double)i + 0.5) / (double)c->n_x;
}

static void axes(FILE *f, const kvq_chart *c, const scale *s) {
    int x0 = LEFT, x1 = W - RIGHT, y0 = H - BOTTOM, y1 = TOP;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n",
            x0, y1, x1 - x0, y0 - y1);
    if (s->log) {
        for (double d = s->lo; d <= s->hi + 1e-9; d += 1) {
            int cl;
            double py = y_px(s, pow(10.0, d), &cl);
            fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, x1, py, py);
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%g</text>\n", x0 - 6, py + 4, pow(10.0, d));
        }
    } else {
        double st = nice_step(s->hi - s->lo);
        for (double v = s->lo; v <= s->hi + st * 1e-6; v += st) {
            double py = TOP + (H - TOP - BOTTOM) * (1.0 - (v - s->lo) / (s->hi - s->lo));
            fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", x0, x1, py, py,
                    fabs(v) < st * 1e-6 ? "#999" : "#ddd");
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%g</text>\n", x0 - 6, py + 4,
                    fabs(v) < st * 1e-6 ? 0.0 : v);
        }
    }
    for (size_t i = 0; i < c->n_x; i++) {
        double px = x_px(c, i);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", px, px, y0, y0 + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">", px, y0 + 20);
        put_text(f, c->x_ticks[i]);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"14\">", (x0 + x1) / 2, H - 18);
    put_text(f, c->x_label);
    fprintf(f, "</text>\n<text transform=\"translate(22,%d) rotate(-90)\" text-anchor=\"middle\" font-size=\"14\">",
            (y0 + y1) / 2);
    put_text(f, c->y_label);
    fputs(s->log ? " (log scale)</text>\n" : "</text>\n", f);
    /* left-aligned so that a long title (a model file name) runs into the legend's side, never
     * off the canvas */
    fputs("<text x=\"12\" y=\"30\" text-anchor=\"start\" font-size=\"17\" font-weight=\"bold\">", f);
    put_text(f, c->title);
    fputs("</text>\n", f);
}

/* Draws series k; returns 1 when a point was clamped to the log floor. */
static int series(FILE *f, const kvq_chart *c, const scale *s, size_t k) {
    int any_clamped = 0;
    const char *col = COLORS[k % N_COLORS], *dash = c->series[k].dashed ? "6,3" : "";
    const double *y = c->series[k].y;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s%s%s points=\"", col,
            *dash ? " stroke-dasharray=\"" : "", dash, *dash ? "\"" : "");
    for (size_t i = 0; i < c->n_x; i++) {
        int cl;
        if (isfinite(y[i])) fprintf(f, "%.1f,%.1f ", x_px(c, i), y_px(s, y[i], &cl));
    }
    fputs("\"/>\n", f);
    for (size_t i = 0; i < c->n_x; i++) {
        int cl;
        if (!isfinite(y[i])) continue;
        double py = y_px(s, y[i], &cl);
        any_clamped |= cl;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" stroke=\"%s\"><title>", x_px(c, i), py,
                cl ? "white" : col, col);
        put_text(f, c->series[k].name);
        fprintf(f, " %s: %.4g</title></circle>\n", c->x_ticks[i], y[i]);
    }
    int lx = W - RIGHT + 20, ly = TOP + 10 + 20 * (int)k;
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s%s%s/>\n", lx,
            lx + 28, ly, ly, col, *dash ? " stroke-dasharray=\"" : "", dash, *dash ? "\"" : "");
    fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/>\n", lx + 14, ly, col);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">", lx + 36, ly + 4);
    put_text(f, c->series[k].name);
    fputs("</text>\n", f);
    return any_clamped;
}

kvq_status kvq_svg_chart_write(FILE *f, const kvq_chart *c) {
    if (!f || !c || !c->n_x || !c->n_series || !c->x_ticks || !c->series) return KVQ_ERR_ARG;
    scale s = make_scale(c);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    axes(f, c, &s);
    int clamped = 0;
    for (size_t k = 0; k < c->n_series; k++) clamped |= series(f, c, &s, k);
    if (clamped) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">hollow marker: value below %.2g</text>\n"
                   "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">(zero or negative included), drawn there</text>\n",
                W - RIGHT + 20, H - BOTTOM - 14, s.floor, W - RIGHT + 20, H - BOTTOM);
    }
    fputs("</svg>\n", f);
    return ferror(f) ? KVQ_ERR_IO : KVQ_OK;
}
