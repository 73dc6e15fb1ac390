# SPDX-License-Identifier: MIT
#
# One INTERFACE target carries the project's warning flags. Project targets link it PRIVATE, so
# consumers of the installed SDK never inherit them. CLUSTERVISOR_WARNINGS_AS_ERRORS (on in the dev
# preset) turns them into errors. -Wnull-dereference is left out: at -O2 and above it reports
# false positives inside Boost.Asio and libstdc++ headers.

add_library(clustervisor_warnings INTERFACE)
target_compile_options(clustervisor_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wswitch-enum
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
# GCC 12 at -O2 reports std::string's operator+(const char*, string&&) as an overlapping memcpy
# (-Wrestrict, GCC bug 105329) and braced std::string members as maybe uninitialized; both are
# inside libstdc++ and wrong. Optimized builds with GCC 12 leave those two out.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(clustervisor_warnings INTERFACE
    $<$<NOT:$<CONFIG:Debug>>:-Wno-restrict -Wno-maybe-uninitialized>)
endif()
if(CLUSTERVISOR_WARNINGS_AS_ERRORS)
  target_compile_options(clustervisor_warnings INTERFACE -Werror)
endif()
