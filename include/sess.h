/*
 * sess.h - the public API of libsess, the session library under sessiond.
 *
 * This header and the ones it includes (include/sess/ headers) are the whole
 * API: the daemon and sessctl use nothing else.  The library is built with
 * hidden visibility, so anything not declared here is not exported.
 *
 * Names: sess_ / SESS_ public; sess__ internal; plain names for statics.
 * Results: int, SESS_OK (0) success, negative errors, positive outcomes.
 * Ownership is written next to each function.
 */
#ifndef SESS_H
#define SESS_H

#include "sess/error.h"
#include "sess/version.h"
#include "sess/keys.h"
#include "sess/store.h"
#include "sess/cookie.h"
#include "sess/set_cookie.h"
#include "sess/session.h"
#include "sess/jwt.h"
#include "sess/cookie_policy.h"
#include "sess/forward_auth.h"

#endif /* SESS_H */
