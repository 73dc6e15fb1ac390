// SPDX-License-Identifier: MIT
//
// Which sanitizer this program is built with, for the test programs: g++ defines
// __SANITIZE_ADDRESS__ and __SANITIZE_THREAD__, clang answers __has_feature instead.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define CLUSTERVISOR_TEST_ASAN 1
#elif defined(__SANITIZE_THREAD__)
#define CLUSTERVISOR_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CLUSTERVISOR_TEST_ASAN 1
#elif __has_feature(thread_sanitizer)
#define CLUSTERVISOR_TEST_TSAN 1
#endif
#endif
