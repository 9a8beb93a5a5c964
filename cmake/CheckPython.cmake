# cmake -P cmake/CheckPython.cmake: tells whether HornbeamPython.cmake finds an embeddable
# CPython, with the same search and the same message, without configuring a build.
include(${CMAKE_CURRENT_LIST_DIR}/HornbeamPython.cmake)
message(STATUS "python-config: ${HB_PYTHON_CONFIG}")
