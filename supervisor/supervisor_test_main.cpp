// SPDX-License-Identifier: MIT
#define BOOST_TEST_MODULE supervisor
#include <boost/test/unit_test.hpp>
