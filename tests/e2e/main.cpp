// SPDX-License-Identifier: MIT
//
// The end-to-end tests' module: one executable, one suite per file (e2e_events, e2e_lifecycle,
// ...), each registered with CTest as a test of its own (--run_test=SUITE).
#define BOOST_TEST_MODULE e2e
#include <boost/test/unit_test.hpp>

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>

namespace {

// The supervisors and CLIs the tests start find their lock files and control sockets in a
// runtime directory of this run (XDG_RUNTIME_DIR), removed at the end with whatever the
// supervisors a test killed on purpose left there, rather than in the user's /tmp/clustervisor-UID.
// (Tests of another runtime directory, or of none, pass their own environment.)
struct RuntimeDirectory {
  std::filesystem::path path;

  RuntimeDirectory() {
    // In /tmp, with a short name, as /tmp/clustervisor-UID is: the tests of long socket paths
    // count on it, whatever TMPDIR says.
    std::string pattern = "/tmp/cv-e2e-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    }
    path = pattern;
    // Others may pass through to the supervisor's own (private) directory in it, as tests of
    // a socket opened up to another user do.
    std::filesystem::permissions(path, std::filesystem::perms::owner_all |
                                           std::filesystem::perms::group_exec |
                                           std::filesystem::perms::others_exec);
    ::setenv("XDG_RUNTIME_DIR", path.c_str(), 1);
  }
  ~RuntimeDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  RuntimeDirectory(const RuntimeDirectory&) = delete;
  RuntimeDirectory& operator=(const RuntimeDirectory&) = delete;
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(RuntimeDirectory);
