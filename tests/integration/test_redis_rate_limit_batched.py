"""Rate limiting far from the limit is metered in-process and reported to
Redis in batches (docs/redis.md). From outside that must still look like one
global budget: two processes together admit the budget, plus at most one
batch per other process, plus what refills while the test runs - never the
budget twice - and the boundary itself is exact on each process."""

import math
import time

from redis_support import fresh_sub, requires_redis, start_redis_server, statuses
from users_support import Client, make_token, unique_email

pytestmark = requires_redis

MAX = 200
WINDOW = 60
SYNC_BATCH = 8  # src/middleware/ratelimit.c


def test_large_budget_stays_global_across_two_processes(server):
    a = Client(start_redis_server(server, RATE_LIMIT_MAX=MAX, RATE_LIMIT_WINDOW_S=WINDOW))
    b = Client(start_redis_server(server, RATE_LIMIT_MAX=MAX, RATE_LIMIT_WINDOW_S=WINDOW))
    try:
        maker = make_token(sub=fresh_sub("batch-maker"))
        user = a.create_user(email=unique_email("rl-batch"), name="Batched", token=maker)
        token = make_token(sub=fresh_sub("batch"))
        path = f"/v1/users/{user['id']}"
        t0 = time.monotonic()
        rs = [(a if i % 2 == 0 else b).get(path, token=token) for i in range(MAX + 60)]
        elapsed = time.monotonic() - t0
        codes = statuses(rs)
        assert set(codes) <= {200, 429}, codes
        admitted = codes.count(200)
        refill = math.ceil(elapsed * MAX / WINDOW) + 1
        assert MAX <= admitted <= MAX + SYNC_BATCH + refill, \
            f"admitted {admitted} of {len(rs)} in {elapsed:.2f}s (budget {MAX}, refill {refill})"
        # the first refusal comes at the budget, give or take one batch
        first_429 = codes.index(429)
        assert MAX <= first_429 <= MAX + SYNC_BATCH + refill, first_429
        # each answer's Remaining is never above what the budget allows
        for r in rs:
            assert 0 <= int(r.headers["X-RateLimit-Remaining"]) < MAX
    finally:
        a.close()
        b.close()
