/*
 * sess/version.h - the libsess version, set by the build from CMakeLists.txt.
 */
#ifndef SESS_VERSION_H
#define SESS_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* "MAJOR.MINOR.PATCH"; never NULL. */
const char *sess_version(void);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* SESS_VERSION_H */
