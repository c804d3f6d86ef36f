/*
 * idempotency_key: an Idempotency-Key header value, through
 * mw_idempotency_key_valid.
 *
 * Property: the answer is exactly the documented rule, 1..IDEM_KEY_MAX
 * printable ASCII characters (0x20..0x7e). A kept key is stored in
 * PostgreSQL and compared byte for byte on replay, so a control byte or
 * invalid UTF-8 getting through would be an error from the database (a
 * 500) rather than the clean 400 the contract promises.
 */
#include "middleware/idempotency.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool want = size >= 1 && size <= IDEM_KEY_MAX;
    for (size_t i = 0; i < size && want; i++) {
        want = data[i] >= 0x20 && data[i] <= 0x7e;
    }
    FUZZ_ASSERT(mw_idempotency_key_valid(fuzz_input(data, size)) == want);
    return 0;
}
