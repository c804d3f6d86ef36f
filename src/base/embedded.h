/*
 * embedded: files compiled into the binary by scripts/embed.sh - the SQL
 * migrations (sorted by name, which starts with their version), the OpenAPI
 * document and the files of the documentation page (openapi/ui/, named by
 * their base name). Read-only, NUL-terminated, live for the whole process.
 */
#ifndef BASE_EMBEDDED_H
#define BASE_EMBEDDED_H

#include <stddef.h>

typedef struct {
    const char *name;
    const char *data;
    size_t len;
} embedded_file_t;

extern const embedded_file_t embedded_openapi;
extern const embedded_file_t embedded_migrations[];
extern const size_t embedded_migrations_count;
extern const embedded_file_t embedded_assets[];
extern const size_t embedded_assets_count;

#endif
