// SPDX-License-Identifier: MIT
//
// Boost.JSON compiled from source for the libFuzzer builds, so that its parser is instrumented
// like the code that calls it (the packaged library is built without coverage).
#include <boost/json/src.hpp>
