/* svg_chart.h — a small hand-written SVG line chart: categories on x (e.g. bit widths), one
 * polyline with markers per series, axes with ticks, optional log-scale y, a legend. Enough for
 * `kvq ablate`'s delta-perplexity chart; not a plotting library. */
#ifndef KVQ_SVG_CHART_H
#define KVQ_SVG_CHART_H

#include <stddef.h>
#include <stdio.h>
#include "kvq_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_chart_series {
    const char *name;
    const double *y;          /* (n_x); NaN = no point */
    int dashed;               /* draw the line dashed (e.g. baselines beside a ladder) */
} kvq_chart_series;

typedef struct kvq_chart {
    const char *title, *x_label, *y_label;
    const char *const *x_ticks;   /* (n_x) category labels */
    size_t n_x;
    const kvq_chart_series *series;  /* (n_series) */
    size_t n_series;
    int log_y;                /* 1 log, 0 linear, -1 automatic (log when the positive values
                                 span more than a factor 30) */
    double log_floor;         /* log scale: values below are drawn at this floor, hollow marker
                                 (0: a decade under the smallest positive value) */
} kvq_chart;

/* Write the chart as a standalone SVG document to f. KVQ_ERR_ARG on an empty chart,
 * KVQ_ERR_IO when writing fails. */
kvq_status kvq_svg_chart_write(FILE *f, const kvq_chart *c);

#ifdef __cplusplus
}
#endif
#endif
