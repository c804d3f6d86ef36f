/*
 * banned: functions this project never calls (git's banned.h technique).
 *
 * Each is redefined to an undeclared identifier, so a call fails to compile.
 * Include it last in every .c file of src/, after the system headers: it
 * would otherwise break their inline definitions (glibc's fortified stdio).
 * Use snprintf, explicit lengths, strtol/strtoull with checks, gmtime_r.
 */
#ifndef BASE_BANNED_H
#define BASE_BANNED_H

#define BANNED(func) sorry_##func##_is_banned

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef gmtime
#define gmtime(x) BANNED(gmtime)
#undef localtime
#define localtime(x) BANNED(localtime)

#endif
