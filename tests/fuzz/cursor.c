/*
 * cursor: pagination cursors as a client sends them back (the cursor query
 * parameter), under a fixed HMAC key.
 *
 * Properties: a cursor that decodes is exactly the one cursor_encode makes
 * for the id it names (one spelling per cursor, none forged); and the first
 * 16 input bytes taken as an id encode to a cursor that decodes to them.
 */
#include <string.h>

#include "routes/cursor.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* the key the seeds in corpus/cursor/ were made with */
    static const char key[] = "cursor-fuzz-key";
    FUZZ_ASSERT(cursor_set_key(key, sizeof(key) - 1) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    str_t in = fuzz_input(data, size);
    uuid_bytes_t id;
    char enc[CURSOR_LEN];
    if (cursor_decode(in, &id) == 0) {
        FUZZ_ASSERT(cursor_encode(&id, enc) == 0);
        FUZZ_ASSERT(str_eq(in, str_make(enc, sizeof(enc))));
    }

    uuid_bytes_t mine = {{0}}, back;
    memcpy(mine.b, data, size < sizeof(mine.b) ? size : sizeof(mine.b));
    FUZZ_ASSERT(cursor_encode(&mine, enc) == 0);
    FUZZ_ASSERT(cursor_decode(str_make(enc, sizeof(enc)), &back) == 0);
    FUZZ_ASSERT(memcmp(mine.b, back.b, sizeof(back.b)) == 0);
    return 0;
}
