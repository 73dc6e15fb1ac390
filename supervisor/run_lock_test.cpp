// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "run_lock.hpp"

using clustervisor::RunLock;

namespace {
// A directory for one case, removed with what is in it (and what was made beside it).
struct Scratch {
  std::filesystem::path path;
  Scratch() {
    std::string name = (std::filesystem::temp_directory_path() / "run-lock-test-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(name.data()) != nullptr);
    path = name;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(run_lock)

BOOST_AUTO_TEST_CASE(a_missing_runtime_directory_is_made_for_this_user_alone) {
  Scratch scratch;
  std::string warning;
  std::string error;
  const auto made = RunLock::prepareDirectory(scratch.path / "rt", &warning, error);
  BOOST_REQUIRE(made.has_value());
  BOOST_TEST(*made == scratch.path / "rt");
  BOOST_TEST(warning.empty());
  struct stat st {};
  BOOST_REQUIRE(::stat(made->c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0700u);
}

BOOST_AUTO_TEST_CASE(a_fallback_someone_else_could_write_to_is_replaced_by_one_of_its_own) {
  // As /tmp/clustervisor-UID made first by another user: here one anybody may write to.
  Scratch scratch;
  const auto squatted = scratch.path / "rt";
  BOOST_REQUIRE(::mkdir(squatted.c_str(), 0700) == 0);
  BOOST_REQUIRE(::chmod(squatted.c_str(), 01777) == 0);
  std::string warning;
  std::string error;
  const auto made = RunLock::prepareDirectory(squatted, &warning, error);
  BOOST_REQUIRE_MESSAGE(made.has_value(), error);
  BOOST_TEST(made->parent_path() == scratch.path);
  BOOST_TEST(made->filename().string().starts_with("rt."));
  struct stat st {};
  BOOST_REQUIRE(::lstat(made->c_str(), &st) == 0);
  BOOST_TEST(S_ISDIR(st.st_mode));
  BOOST_TEST(st.st_uid == ::getuid());
  BOOST_TEST((st.st_mode & 0777) == 0700u);
  BOOST_TEST(warning == "the runtime directory " + squatted.string() +
                            " is not a directory owned by this user and writable only by it "
                            "(another user's?); using " +
                            made->string() +
                            " instead; remove it, or set XDG_RUNTIME_DIR (or the unit's "
                            "RuntimeDirectory= and control.socket)");
}

BOOST_AUTO_TEST_CASE(a_runtime_directory_the_user_chose_is_refused_rather_than_replaced) {
  // XDG_RUNTIME_DIR's: the user's own setting, so its problem is theirs to see and fix.
  Scratch scratch;
  const auto shared = scratch.path / "rt";
  BOOST_REQUIRE(::mkdir(shared.c_str(), 0700) == 0);
  BOOST_REQUIRE(::chmod(shared.c_str(), 0777) == 0);
  std::string error;
  BOOST_TEST(!RunLock::prepareDirectory(shared, nullptr, error).has_value());
  BOOST_TEST(error == "the runtime directory " + shared.string() +
                          " is not a directory owned by this user and writable only by it; "
                          "remove it or set XDG_RUNTIME_DIR");
}

BOOST_AUTO_TEST_SUITE_END()
