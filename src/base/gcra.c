/* gcra: see gcra.h; the Lua twin in middleware/ratelimit.c must match. */
#include "base/gcra.h"

#include "base/banned.h"

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a <= 0 ? 0 : (a + b - 1) / b;
}

int64_t gcra_interval_us(const gcra_policy_t *p)
{
    int64_t i = p->window_us / p->limit;
    return i > 0 ? i : 1;
}

int64_t gcra_take(const gcra_policy_t *p, int64_t tat, int64_t now_us, gcra_result_t *out)
{
    int64_t interval = gcra_interval_us(p);
    int64_t window = interval * p->limit; /* the window the interval really gives */
    if (tat < now_us) {
        tat = now_us;
    }
    int64_t new_tat = tat + interval;
    int64_t allow_at = new_tat - window;
    if (allow_at > now_us) {
        out->allowed = false;
        out->remaining = 0;
        out->reset_s = ceil_div(tat - now_us, 1000000);
        int64_t r = ceil_div(allow_at - now_us, 1000000);
        out->retry_after_s = r < 1 ? 1 : r;
        return tat;
    }
    out->allowed = true;
    out->remaining = (now_us - allow_at) / interval;
    out->reset_s = ceil_div(new_tat - now_us, 1000000);
    out->retry_after_s = 0;
    return new_tat;
}
