# SPDX-License-Identifier: MIT
# Fails when groff reports any warning or error for PAGE.
if(NOT EXISTS "${PAGE}")
  message(FATAL_ERROR "${PAGE} does not exist")
endif()
execute_process(COMMAND ${GROFF} -man -ww -z "${PAGE}"
  RESULT_VARIABLE result ERROR_VARIABLE errors OUTPUT_VARIABLE output)
if(NOT result EQUAL 0 OR NOT errors STREQUAL "")
  message(FATAL_ERROR "${PAGE} does not render cleanly:\n${errors}${output}")
endif()
