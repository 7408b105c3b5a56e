#include "profiler/capture/launch/job_process.hpp"

#include "base/error.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace wlb::profiler {
namespace {

std::atomic<pid_t> g_child{0};

void forward(int sig, siginfo_t* info, void*) {
    // A signal the terminal sent to the foreground process group reached the child as well.
    if (info != nullptr && info->si_code == SI_KERNEL)
        return;
    const pid_t child = g_child.load();
    if (child > 0)
        ::kill(child, sig);
}

std::vector<std::string>
environment_with(const std::vector<std::pair<std::string, std::string>>& set) {
    std::map<std::string, std::string> vars;
    std::vector<std::string> order;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string entry(*e);
        const auto eq = entry.find('=');
        const std::string name = entry.substr(0, eq);
        if (!vars.contains(name))
            order.push_back(name);
        vars[name] = eq == std::string::npos ? std::string() : entry.substr(eq + 1);
    }
    for (const auto& [name, value] : set) {
        if (!vars.contains(name))
            order.push_back(name);
        vars[name] = value;
    }
    std::vector<std::string> out;
    out.reserve(order.size());
    for (const auto& name : order)
        out.push_back(name + "=" + vars[name]);
    return out;
}

} // namespace

const std::vector<int>& forwarded_signals() {
    static const std::vector<int> list = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    return list;
}

job_exit run_job(const job_command& command) {
    if (command.argv.empty() || command.argv[0].empty())
        throw usage_error("no command to run: give it after --, e.g. wlbtune profile -- "
                          "torchrun --nproc-per-node 8 train.py");
    const auto env = environment_with(command.set_env);
    std::vector<char*> argv, envp;
    for (const auto& a : command.argv)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env)
        envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0)
        throw runtime_failure(std::string("cannot start the command: pipe: ") +
                              std::strerror(errno));
    // Forwarding: block the signals until the child's pid is known, so none is lost between.
    sigset_t block, previous_mask;
    sigemptyset(&block);
    for (int sig : forwarded_signals())
        sigaddset(&block, sig);
    ::sigprocmask(SIG_BLOCK, &block, &previous_mask);
    std::map<int, struct sigaction> previous;
    for (int sig : forwarded_signals()) {
        struct sigaction a {};
        a.sa_sigaction = &forward;
        a.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&a.sa_mask);
        ::sigaction(sig, &a, &previous[sig]);
    }
    auto restore = [&] {
        g_child = 0;
        for (const auto& [sig, a] : previous)
            ::sigaction(sig, &a, nullptr);
        ::sigprocmask(SIG_SETMASK, &previous_mask, nullptr);
    };

    const auto started = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        ::close(report[0]);
        ::close(report[1]);
        restore();
        throw runtime_failure(std::string("cannot start the command: fork: ") + std::strerror(e));
    }
    if (pid == 0) {
        // The child: the signals as the user's shell would have left them, then the command.
        for (const auto& [sig, a] : previous) {
            struct sigaction d {};
            d.sa_handler =
                (a.sa_flags & SA_SIGINFO) == 0 && a.sa_handler == SIG_IGN ? SIG_IGN : SIG_DFL;
            sigemptyset(&d.sa_mask);
            ::sigaction(sig, &d, nullptr);
        }
        ::sigprocmask(SIG_SETMASK, &previous_mask, nullptr);
        ::execvpe(argv[0], argv.data(), envp.data());
        const int e = errno;
        [[maybe_unused]] const auto n = ::write(report[1], &e, sizeof e);
        ::_exit(127);
    }
    g_child = pid;
    ::sigprocmask(SIG_SETMASK, &previous_mask, nullptr);
    ::close(report[1]);
    int exec_errno = 0;
    ssize_t got = 0;
    do {
        got = ::read(report[0], &exec_errno, sizeof exec_errno);
    } while (got < 0 && errno == EINTR);
    ::close(report[0]);

    int status = 0;
    pid_t waited = 0;
    do {
        waited = ::waitpid(pid, &status, 0);
    } while (waited < 0 && errno == EINTR);
    restore();
    if (got == static_cast<ssize_t>(sizeof exec_errno))
        throw input_error(fmt::format("cannot run \"{}\": {}{}", command.argv[0],
                                      std::strerror(exec_errno),
                                      exec_errno == ENOENT ? " (not found on PATH)" : ""));
    job_exit out;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (waited < 0)
        throw runtime_failure(std::string("lost the command's process: waitpid: ") +
                              std::strerror(errno));
    if (WIFSIGNALED(status))
        out.signal = WTERMSIG(status);
    else
        out.exit_code = WEXITSTATUS(status);
    return out;
}

} // namespace wlb::profiler
