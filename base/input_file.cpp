#include "base/input_file.hpp"

#include "base/error.hpp"

#include <cerrno>
#include <cstring>
#include <sys/stat.h>

namespace wlb {

void require_input_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw input_error(path, std::string("cannot open: ") + std::strerror(errno));
    if (S_ISREG(st.st_mode))
        return;
    const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    throw input_error(path, std::string("is ") + what +
                                ", not a regular file: wlbtune reads an input more than once "
                                "(to hash it for the report, then to parse it) and must know "
                                "where it ends; save it to a file first");
}

} // namespace wlb
