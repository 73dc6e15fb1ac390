// SPDX-License-Identifier: MIT
//
// SignalsBlocked: every signal blocked in the calling thread for the object's lifetime, the
// previous mask restored after. Around a fork (no supervisor signal handler may run in the child
// before exec) and around starting a thread (which inherits the mask, so signals keep going to
// the event loop's thread).
#pragma once

#include <signal.h>

namespace clustervisor {

class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous_);
  }
  ~SignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t previous_;
};

}  // namespace clustervisor
