// Input files: wlbtune reads an input more than once (it hashes every input for the report's
// provenance, then parses it), and a size it can bound. So an input must be a regular file: a
// FIFO would block the second read forever, /dev/zero or /dev/urandom never end. Checked before
// any byte is read, with a message that names the file and says what to do.
#pragma once

#include <string>

namespace wlb {

/// Throws wlb::input_error naming `path` unless it is a regular file (after symbolic links):
/// missing, a directory, a FIFO, a character or block device, or a socket.
void require_input_file(const std::string& path);

} // namespace wlb
