/* err: names for the error codes of err.h. */
#include "base/err.h"
#include "base/banned.h"

const char *err_name(int code)
{
    switch (code) {
    case ERR_OK:
        return "ok";
    case ERR_NOMEM:
        return "no-memory";
    case ERR_INVAL:
        return "invalid";
    case ERR_RANGE:
        return "out-of-range";
    case ERR_TIMEOUT:
        return "timeout";
    case ERR_UNAVAILABLE:
        return "unavailable";
    case ERR_NOTFOUND:
        return "not-found";
    case ERR_CONFLICT:
        return "conflict";
    case ERR_IO:
        return "io";
    case ERR_CANCELLED:
        return "cancelled";
    case ERR_UNAUTHORIZED:
        return "unauthorized";
    case ERR_PRECONDITION:
        return "precondition-failed";
    case ERR_RETRY:
        return "retry";
    case ERR_REPLAY:
        return "replay";
    }
    return "unknown";
}
