/* notify: a no-op without NOTIFY_SOCKET; with it, the datagrams a service
   manager receives, and the loop wait that a watchdog period asks for. The
   watchdog's pings while loops turn (or not) are black-box tests
   (tests/integration/test_notify.py). */
#include "app/notify.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "obs/log.h"
#include "test.h"

TEST(notify_without_socket_does_nothing)
{
    unsetenv("NOTIFY_SOCKET");
    setenv("WATCHDOG_USEC", "1000000", 1);
    CHECK_INT_EQ(notify_start(2), 0);
    CHECK_INT_EQ(notify_loop_wait_ms(1000), 1000);
    notify_worker_turn(0);
    notify_worker_turn(1);
    notify_ready();
    notify_stopping();
    notify_stop();
    unsetenv("WATCHDOG_USEC");
}

static int bind_socket(char *dir, struct sockaddr_un *addr)
{
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    *addr = (struct sockaddr_un){.sun_family = AF_UNIX};
    snprintf(addr->sun_path, sizeof(addr->sun_path), "%s/n", dir);
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof(*addr)) != 0) {
        return -1;
    }
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void check_received(int fd, const char *want)
{
    char got[256];
    ssize_t n = recv(fd, got, sizeof(got) - 1, 0);
    CHECK(n > 0);
    got[n > 0 ? n : 0] = '\0';
    if (strcmp(got, want) != 0) {
        test_fail(__FILE__, __LINE__, "received \"%s\", want \"%s\"", got, want);
    }
}

TEST(notify_sends_ready_and_stopping)
{
    char dir[] = "/tmp/api-notify-test-XXXXXX";
    struct sockaddr_un addr;
    int fd = bind_socket(dir, &addr);
    CHECK(fd >= 0);
    if (fd < 0) {
        return;
    }
    setenv("NOTIFY_SOCKET", addr.sun_path, 1);
    unsetenv("WATCHDOG_USEC");
    CHECK_INT_EQ(notify_start(1), 0);
    CHECK_INT_EQ(notify_loop_wait_ms(1000), 1000); /* no watchdog asked for */
    notify_ready();
    check_received(fd, "READY=1\nSTATUS=serving");
    notify_stopping();
    check_received(fd, "STOPPING=1\nSTATUS=draining");
    notify_stop();
    unsetenv("NOTIFY_SOCKET");
    close(fd);
    unlink(addr.sun_path);
    rmdir(dir);
}

TEST(notify_watchdog_period_sets_the_loop_wait)
{
    char dir[] = "/tmp/api-notify-test-XXXXXX";
    struct sockaddr_un addr;
    int fd = bind_socket(dir, &addr);
    CHECK(fd >= 0);
    if (fd < 0) {
        return;
    }
    setenv("NOTIFY_SOCKET", addr.sun_path, 1);
    /* a 400 ms watchdog: pings every 200 ms, loops wait at most 50 ms */
    setenv("WATCHDOG_USEC", "400000", 1);
    log_set_level(LOG_ERROR); /* keep TAP clean: the start and stalls log below it */
    CHECK_INT_EQ(notify_start(3), 0);
    CHECK_INT_EQ(notify_loop_wait_ms(1000), 50);
    CHECK_INT_EQ(notify_loop_wait_ms(20), 20);
    /* all three loops turn: the first look (200 ms on) pings */
    for (unsigned i = 0; i < 3; i++) {
        notify_worker_turn(i);
    }
    check_received(fd, "WATCHDOG=1");
    notify_stop();
    CHECK_INT_EQ(notify_loop_wait_ms(1000), 1000);
    log_set_level(LOG_INFO);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    close(fd);
    unlink(addr.sun_path);
    rmdir(dir);
}
