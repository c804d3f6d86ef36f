/* secret: libpq's messages about a connection string never carry its password. */
#include "base/err.h"
#include "db/conninfo.h"
#include "db/secret.h"
#include "test.h"

TEST(secret_check_accepts_both_forms)
{
    char err[256] = "";
    CHECK_INT_EQ(db_secret_check("DATABASE_URL", "dbname=api", err, sizeof(err)), 0);
    CHECK_INT_EQ(db_secret_check("DATABASE_URL", "postgresql://app:pw@127.0.0.1:5432/api", err, sizeof(err)),
                 0);
    CHECK_INT_EQ(
        db_secret_check("DATABASE_URL", "postgresql://app:pw@127.0.0.1:5432/api?bogus=1", err, sizeof(err)),
        ERR_INVAL);
    CHECK(strstr(err, "DATABASE_URL") != NULL && strstr(err, "bogus") == NULL);
}

TEST(secret_redact_replaces_the_password)
{
    char out[256];
    db_secret_redact("postgresql://app:Hunter2Hunter2@127.0.0.1/api",
                     "FATAL:  password authentication failed for user \"app\" (Hunter2Hunter2)\n", out,
                     sizeof(out));
    CHECK(strstr(out, "Hunter2") == NULL);
    CHECK(strstr(out, "failed for user") != NULL);
    CHECK(out[strlen(out) - 1] != '\n');
    db_secret_redact("host=h password='Hunter2 Hunter2' dbname=api", "x Hunter2 Hunter2 y", out, sizeof(out));
    CHECK(strcmp(out, "x *** y") == 0);
    /* a string libpq cannot parse: nothing it quotes survives */
    db_secret_redact("postgresql://app:Hun%zzter2@h/api", "invalid percent-encoded token: \"Hun%zzter2\"",
                     out, sizeof(out));
    CHECK(strstr(out, "Hun") == NULL);
    db_secret_redact("dbname=api", "connection refused", out, sizeof(out));
    CHECK(strcmp(out, "connection refused") == 0);
    db_secret_redact(NULL, NULL, out, sizeof(out));
    CHECK(strcmp(out, "") == 0);
}

TEST(conninfo_prepare_error_hides_the_password)
{
    char err[256] = "";
    char *out = NULL;
    CHECK_INT_EQ(db_conninfo_prepare("postgresql://app:S3CRETpw%zz@127.0.0.1/api", &out, err, sizeof(err)),
                 ERR_INVAL);
    CHECK(out == NULL);
    CHECK(strstr(err, "DATABASE_URL") != NULL);
    CHECK(strstr(err, "S3CRET") == NULL);
}
