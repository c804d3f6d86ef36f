"""GET /v1/users: page size, keyset order, cursor walks (also while users are
being created), and refusal of bad limits, forged cursors and unknown
parameters.

The database is shared with the rest of the suite, so walks cover every user
in it; assertions are about the users a test made itself plus global order."""

import base64
import os
import time

import pytest

from users_support import (OTHER_CURSOR_SECRET, Client, assert_page, assert_problem_response,
                           requires_db, start_users_server)

pytestmark = requires_db

# Bounds for a full walk: a run's database holds at most a few thousand users.
MAX_PAGES = 5000
WALK_SECONDS = 120


@pytest.fixture(scope="module")
def some_users(api):
    """At least a few users exist, so a limit=1 page has a next cursor."""
    return api.create_users(3, prefix="list-seed")


def list_page(api, **params):
    return assert_page(api.get("/v1/users", params=params))


def walk(api, limit, on_page=None):
    """Every id of a full walk, in the order served; checks each page's
    shape and that only the last page lacks a cursor."""
    ids = []
    cursor = None
    deadline = time.monotonic() + WALK_SECONDS
    for n in range(MAX_PAGES):
        assert time.monotonic() < deadline, f"walk took over {WALK_SECONDS}s ({n} pages)"
        params = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = list_page(api, **params)
        assert page["meta"]["pageSize"] == limit, page["meta"]
        ids.extend(u["id"] for u in page["data"])
        cursor = page["meta"]["nextCursor"]
        if cursor is None:
            return ids
        # A page that is not the last is full.
        assert len(page["data"]) == limit, page["meta"]
        if on_page is not None:
            on_page(n)
    raise AssertionError(f"walk did not end within {MAX_PAGES} pages")


def test_default_page_size_is_50(api, some_users):
    page = list_page(api)
    assert page["meta"]["pageSize"] == 50
    assert 1 <= len(page["data"]) <= 50


@pytest.mark.parametrize("limit", [1, 2, 50, 99, 100])
def test_limit_is_applied(api, some_users, limit):
    page = list_page(api, limit=limit)
    assert page["meta"]["pageSize"] == limit
    assert 1 <= len(page["data"]) <= limit
    if len(page["data"]) < limit:
        assert page["meta"]["nextCursor"] is None


def test_first_page_is_in_ascending_id_order(api, some_users):
    ids = [u["id"] for u in list_page(api, limit=100)["data"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_limit_1_has_a_next_cursor(api, some_users):
    page = list_page(api, limit=1)
    assert len(page["data"]) == 1
    assert isinstance(page["meta"]["nextCursor"], str) and page["meta"]["nextCursor"]


def test_cursor_walk_returns_every_user_once_in_creation_order(api):
    mine = [u["id"] for u in api.create_users(25, prefix="walk")]
    ids = walk(api, 7)
    assert len(ids) == len(set(ids)), "a user was served twice"
    assert ids == sorted(ids), "users not in ascending id order"
    positions = [ids.index(i) for i in mine if i in ids]
    assert len(positions) == 25, f"missing from the walk: {set(mine) - set(ids)}"
    assert positions == sorted(positions), "users not served in creation order"


def test_walk_is_stable_while_users_are_created(api):
    before = [u["id"] for u in api.create_users(25, prefix="stable")]
    created_during = []

    def create_one(n):
        if n < 6:
            created_during.append(api.create_user(name=f"during {n}")["id"])

    ids = walk(api, 7, on_page=create_one)
    assert len(created_during) >= 1
    assert len(ids) == len(set(ids)), "a user was served twice"
    assert ids == sorted(ids), "users not in ascending id order"
    missing = set(before) - set(ids)
    assert not missing, f"users that existed before the walk were skipped: {missing}"
    # New ids sort after everything that existed when the walk began, so they
    # can only appear after the old ones.
    last_old = max(ids.index(i) for i in before)
    for new in created_during:
        assert new > max(before)
        if new in ids:
            assert ids.index(new) > last_old


def test_last_page_cursor_is_null_and_pages_do_not_overlap(api, some_users):
    first = list_page(api, limit=2)
    if first["meta"]["nextCursor"] is None:
        pytest.skip("fewer than three users")
    second = list_page(api, limit=2, cursor=first["meta"]["nextCursor"])
    a = [u["id"] for u in first["data"]]
    b = [u["id"] for u in second["data"]]
    assert not set(a) & set(b)
    assert max(a) < min(b)


def test_cursor_is_reusable(api, some_users):
    cursor = list_page(api, limit=1)["meta"]["nextCursor"]
    one = list_page(api, limit=1, cursor=cursor)
    two = list_page(api, limit=1, cursor=cursor)
    assert one["data"][0]["id"] == two["data"][0]["id"]


# ---- 400s -----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "101", "-1", "abc", "", "1.5", "1e2", "0x10",
                                   "99999999999999999999999"])
def test_bad_limit_is_400_naming_limit(api, value):
    r = api.get("/v1/users", params={"limit": value})
    assert_problem_response(r, 400, fields=["limit"])


@pytest.fixture(scope="module")
def good_cursor(api, some_users):
    cursor = list_page(api, limit=1)["meta"]["nextCursor"]
    assert cursor
    return cursor


def _flip(cursor):
    """The cursor with one character (near the middle) changed."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for i in list(range(len(cursor) // 2, len(cursor))) + list(range(len(cursor) // 2)):
        ch = cursor[i]
        if ch in alphabet:
            repl = "A" if ch != "A" else "B"
            return cursor[:i] + repl + cursor[i + 1:]
    raise AssertionError(f"cannot alter cursor {cursor!r}")


ALTERATIONS = {
    "flip-middle": _flip,
    "flip-first": lambda c: ("B" if c[0] == "A" else "A") + c[1:],
    "flip-last": lambda c: c[:-1] + ("B" if c[-1] == "A" else "A"),
    "truncate-half": lambda c: c[: len(c) // 2],
    "truncate-4": lambda c: c[:-4],
    "append": lambda c: c + "AAAA",
    "random-base64url": lambda c: base64.urlsafe_b64encode(os.urandom(48)).rstrip(b"=").decode(),
    "random-same-length": lambda c: base64.urlsafe_b64encode(os.urandom(len(c))).decode()[: len(c)],
    "empty": lambda c: "",
    "not-base64": lambda c: "!!!not*a*cursor!!!",
    "doubled": lambda c: c + c,
}


@pytest.mark.parametrize("how", list(ALTERATIONS))
def test_altered_cursor_is_400_naming_cursor(api, good_cursor, how):
    bad = ALTERATIONS[how](good_cursor)
    assert bad != good_cursor
    r = api.get("/v1/users", params={"limit": 1, "cursor": bad})
    assert_problem_response(r, 400, fields=["cursor"])


def test_cursor_signed_with_another_secret_is_400(api, some_users, server):
    other = start_users_server(server, CURSOR_SECRET=OTHER_CURSOR_SECRET)
    oc = Client(other)
    try:
        foreign = list_page(oc, limit=1)["meta"]["nextCursor"]
        assert foreign
        # It works where it was made ...
        list_page(oc, limit=1, cursor=foreign)
    finally:
        oc.close()
    # ... and nowhere else.
    r = api.get("/v1/users", params={"limit": 1, "cursor": foreign})
    assert_problem_response(r, 400, fields=["cursor"])


@pytest.mark.parametrize("query", ["foo=1", "limit=5&foo=1", "page=2", "offset=10", "sort=email",
                                   "Limit=5"])
def test_unknown_query_parameter_is_400(api, query):
    r = api.get(f"/v1/users?{query}")
    assert_problem_response(r, 400)
