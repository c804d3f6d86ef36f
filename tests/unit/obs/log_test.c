/* log: level parsing (the writer is exercised by the black-box tests). */
#include "base/err.h"
#include "obs/log.h"
#include "test.h"

TEST(log_level_parse_names)
{
    log_level_t l;
    CHECK_INT_EQ(log_level_parse(STR("trace"), &l), 0);
    CHECK(l == LOG_TRACE);
    CHECK_INT_EQ(log_level_parse(STR("FATAL"), &l), 0);
    CHECK(l == LOG_FATAL);
    CHECK_INT_EQ(log_level_parse(STR("verbose"), &l), ERR_INVAL);
    log_set_level(LOG_WARN);
    CHECK(!log_enabled(LOG_INFO));
    CHECK(log_enabled(LOG_ERROR));
    log_set_level(LOG_INFO);
}
