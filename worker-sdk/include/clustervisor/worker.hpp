// SPDX-License-Identifier: MIT
//
// The worker SDK in one include: Cluster, EventBus and their errors.
#pragma once

#include "clustervisor/cluster.hpp"
#include "clustervisor/error.hpp"
#include "clustervisor/event_bus.hpp"
