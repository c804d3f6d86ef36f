/* clock: thin wrappers over clock_gettime, and RFC 3339 formatting. */
#include "base/clock.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "base/banned.h"

uint64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t clock_mono_ms(void)
{
    return clock_mono_us() / 1000u;
}

int64_t clock_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char two_digits[200] = "0001020304050607080910111213141516171819"
                                    "2021222324252627282930313233343536373839"
                                    "4041424344454647484950515253545556575859"
                                    "6061626364656667686970717273747576777879"
                                    "8081828384858687888990919293949596979899";

/* Writes n (0..9999) as exactly width (2 or 4) digits. */
static void put_digits(char *out, uint32_t n, int width)
{
    if (width == 4) {
        memcpy(out, &two_digits[2 * (n / 100)], 2);
        out += 2;
    }
    memcpy(out, &two_digits[2 * (n % 100)], 2);
}

/* The date part ("YYYY-MM-DD") of the last day formatted on this thread: a
   page of users mostly shares a handful of days, and the civil-date
   arithmetic is most of the cost. */
static _Thread_local int64_t last_days = INT64_MIN;
static _Thread_local bool last_ok;
static _Thread_local char last_date[10];

/* Days since 1970-01-01 to "YYYY-MM-DD" without gmtime_r or printf
   (H. Hinnant, "chrono-compatible low-level date algorithms", the inverse
   of days_from_civil). False outside years 0..9999. */
static bool format_date(int64_t days, char *out)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    if (year < 0 || year > 9999) {
        return false;
    }
    put_digits(out, (uint32_t)year, 4);
    out[4] = '-';
    put_digits(out + 5, (uint32_t)month, 2);
    out[7] = '-';
    put_digits(out + 8, (uint32_t)day, 2);
    return true;
}

size_t clock_format_rfc3339(int64_t wall_us, char *out)
{
    /* this runs for every timestamp in every response */
    int64_t ms = wall_us / 1000;
    if (wall_us % 1000 < 0) {
        ms -= 1;
    }
    int64_t secs = ms / 1000, msec = ms % 1000;
    if (msec < 0) {
        msec += 1000;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    if (days != last_days) {
        last_ok = format_date(days, last_date);
        last_days = days;
    }
    if (!last_ok) {
        return 0;
    }
    memcpy(out, last_date, 10);
    uint32_t t = (uint32_t)sod, m = (uint32_t)msec;
    out[10] = 'T';
    put_digits(out + 11, t / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, t / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, t % 60, 2);
    out[19] = '.';
    out[20] = (char)('0' + m / 100);
    put_digits(out + 21, m % 100, 2);
    out[23] = 'Z';
    out[24] = '\0';
    return CLOCK_RFC3339_LEN;
}
