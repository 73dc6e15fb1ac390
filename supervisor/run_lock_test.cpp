// SPDX-License-Identifier: MIT
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
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

BOOST_AUTO_TEST_CASE(a_directory_problem_is_found_without_making_anything) {
  Scratch scratch;
  const auto missing = scratch.path / "missing";
  BOOST_TEST(!RunLock::directoryProblem(missing).has_value());  // `run` makes it
  BOOST_TEST(!std::filesystem::exists(missing));
  const auto own = scratch.path / "own";
  BOOST_REQUIRE(::mkdir(own.c_str(), 0700) == 0);
  BOOST_TEST(!RunLock::directoryProblem(own).has_value());
  const auto link = scratch.path / "link";
  std::filesystem::create_directory_symlink(own, link);
  const auto shared = scratch.path / "shared";
  BOOST_REQUIRE(::mkdir(shared.c_str(), 0700) == 0);
  BOOST_REQUIRE(::chmod(shared.c_str(), 0770) == 0);
  const auto file = scratch.path / "file";
  std::ofstream(file.string()) << "x";
  for (const auto& bad : {link, shared, file}) {
    BOOST_TEST(RunLock::directoryProblem(bad).value_or("") ==
                   "the runtime directory " + bad.string() +
                       " is not a directory owned by this user and writable only by it",
               bad);
  }
}

BOOST_AUTO_TEST_CASE(a_lock_held_in_another_private_fallback_directory_is_found) {
  // As a supervisor that started in one beside /tmp/clustervisor-UID (the lock file's name is
  // this test's alone, so no bot's is touched).
  std::string name = RunLock::fallbackDirectoryPath().string() + ".XXXXXX";
  BOOST_REQUIRE(::mkdtemp(name.data()) != nullptr);
  const std::filesystem::path other = name;
  Scratch own;
  const std::string lockName = "run-lock-test-" + std::to_string(::getpid()) + ".lock";
  const auto lockFile = other / lockName;
  const int fd = ::open(lockFile.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  BOOST_REQUIRE(fd >= 0);
  BOOST_REQUIRE(::write(fd, "4242\n", 5) == 5);
  BOOST_REQUIRE(::flock(fd, LOCK_EX) == 0);
  // Held by another open file description: a twin's.
  const auto twin = RunLock::lockHeldInAnotherOwnDirectory(own.path, lockName);
  BOOST_TEST(twin.has_value());
  if (twin) {
    BOOST_TEST(twin->first == lockFile);
    BOOST_TEST(twin->second == "4242");
  }
  // Its own directory is not another; a lock let go is no supervisor's.
  BOOST_TEST(!RunLock::lockHeldInAnotherOwnDirectory(other, lockName).has_value());
  ::close(fd);
  BOOST_TEST(!RunLock::lockHeldInAnotherOwnDirectory(own.path, lockName).has_value());
  std::error_code ignored;
  std::filesystem::remove_all(other, ignored);
}

BOOST_AUTO_TEST_CASE(a_config_named_relative_to_the_cwd_that_is_gone_finds_the_same_lock) {
  // `clustervisor stop bot.toml` after bot.toml was moved away: the lock the supervisor took for
  // the file's absolute path, as it was when the file was there.
  const std::filesystem::path directory = "/run/user/test";
  for (const std::filesystem::path gone :
       {"clustervisor-test-no-such-file.toml", "no-such-directory/clustervisor-test.toml"}) {
    BOOST_TEST(RunLock::lockFileFor(gone, directory) ==
                   RunLock::lockFileFor(std::filesystem::current_path() / gone, directory),
               gone);
  }
}

BOOST_AUTO_TEST_SUITE_END()
