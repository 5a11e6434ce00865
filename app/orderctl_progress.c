/* A progress line for long operations (rebuild, verify) on a terminal: count, percentage, rate
 * and ETA, redrawn in place on stderr at most ten times a second. Disabled, it prints nothing, so
 * scripts and logs see only results. */
#include "es/clock.h"
#include "orderctl.h"

static double now_s(void) { return (double)es_mono_us() / 1e6; }

static void eta_text(double s, char *out, size_t len)
{
    if (s < 0 || s > 1e7)
        snprintf(out, len, "?");
    else if (s < 60)
        snprintf(out, len, "%.0fs", s);
    else if (s < 3600)
        snprintf(out, len, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(out, len, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static void draw(ctl_progress *p, double now)
{
    double elapsed = now - p->started;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    char eta[32] = "?";
    if (p->total > 0 && rate > 0)
        eta_text((double)(p->total - p->done) / rate, eta, sizeof eta);
    if (p->total > 0)
        fprintf(stderr, "\r\033[K%s: %lld/%lld %s (%.0f%%), %.0f/s, ETA %s", p->what, (long long)p->done,
                (long long)p->total, p->unit, 100.0 * (double)p->done / (double)p->total, rate, eta);
    else
        fprintf(stderr, "\r\033[K%s: %lld %s, %.0f/s", p->what, (long long)p->done, p->unit, rate);
    fflush(stderr);
    p->last_drawn = now;
}

void ctl_progress_start(ctl_progress *p, int enabled, const char *what, const char *unit, int64_t total)
{
    *p = (ctl_progress){.enabled = enabled, .what = what, .unit = unit, .total = total};
    p->started = now_s();
    if (enabled)
        draw(p, p->started);
}

void ctl_progress_update(ctl_progress *p, int64_t done)
{
    p->done = done;
    if (!p->enabled)
        return;
    double now = now_s();
    if (now - p->last_drawn >= 0.1)
        draw(p, now);
}

void ctl_progress_end(ctl_progress *p)
{
    if (!p->enabled)
        return;
    draw(p, now_s());
    fputc('\n', stderr);
}
