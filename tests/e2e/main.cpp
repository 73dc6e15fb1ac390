// SPDX-License-Identifier: MIT
//
// The end-to-end tests' module: one executable, one suite per file (e2e_events, e2e_lifecycle,
// ...), each registered with CTest as a test of its own (--run_test=SUITE).
#define BOOST_TEST_MODULE e2e
#include <boost/test/unit_test.hpp>
