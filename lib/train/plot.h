/* plot.h - the training run's SVG loss plot (plot.c). */
#ifndef S2S_PLOT_H
#define S2S_PLOT_H

#include "internal.h"

/* Writes PREFIX.loss.svg from PREFIX.metrics.csv: training and validation loss against the
 * step, readable in any browser. Written under a temporary name and renamed when complete, so a
 * failed write leaves the previous plot. S2S_OK without writing when there is nothing to plot
 * (no CSV yet); S2S_ERR_IO naming the file when a write fails. */
s2s_status s2s_trainer_plot(const char *prefix);

#endif
