# `cmake --install build --prefix PREFIX` (or scripts/install.sh PREFIX): the binary, its Python
# package, the docs and examples, and (HB_INSTALL_PYTHON_RUNTIME, on by default) the embedded
# Python's runtime, so the installed tree runs as any user on a machine without the build's
# Python. The layout is the one src/python/pylocate.h looks for:
#   bin/hornbeam-uring
#   lib/hornbeam-uring/python/lib/libpython3.X.so.1.0   (RPATH $ORIGIN/../lib/hornbeam-uring/python/lib)
#   lib/hornbeam-uring/python/lib/python3.X/            (the standard library: PYTHONHOME)
#   share/hornbeam-uring/python/                        (hornbeam_erlang, hornbeam_ml, stubs)
#   share/doc/hornbeam-uring/                           (README.md, docs/, examples/)
# With HB_INSTALL_PYTHON_RUNTIME=OFF the binary keeps an absolute RPATH to the build's libpython
# and uses that Python's prefix: every user that runs it must be able to read it (a pyenv under
# /root, mode 0700, is not readable by others).
option(HB_INSTALL_PYTHON_RUNTIME
  "Install the embedded Python (libpython and its standard library) under the prefix" ON)
include(GNUInstallDirs)

set(HB_PY_HOME_DEST "${CMAKE_INSTALL_LIBDIR}/hornbeam-uring/python")
install(TARGETS hornbeam-uring RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/python/ DESTINATION ${CMAKE_INSTALL_DATADIR}/hornbeam-uring/python
  FILES_MATCHING PATTERN "*.py" PATTERN "*.pyi" PATTERN "pyproject.toml" PATTERN "README.md"
  PATTERN "__pycache__" EXCLUDE PATTERN "*.egg-info" EXCLUDE PATTERN "build" EXCLUDE)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/hornbeam-uring)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/hornbeam-uring/docs)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/examples/ DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/hornbeam-uring/examples
  PATTERN "__pycache__" EXCLUDE)

if(HB_INSTALL_PYTHON_RUNTIME)
  # The library file the binary's DT_NEEDED names (libpython3.X.so.1.0), wherever the symlinks go.
  set(_hb_pylib "")
  foreach(d "${HB_PY_LIBDIR}" "${HB_PY_LIBDIR}/${CMAKE_LIBRARY_ARCHITECTURE}" "${HB_PY_LIBDIR}/x86_64-linux-gnu")
    if(NOT _hb_pylib AND EXISTS "${d}/libpython${HB_PY_VERSION}.so")
      set(_hb_pylib "${d}/libpython${HB_PY_VERSION}.so")
    endif()
  endforeach()
  get_filename_component(_hb_pyreal "${_hb_pylib}" REALPATH)
  execute_process(COMMAND objdump -p "${_hb_pyreal}" OUTPUT_VARIABLE _hb_dump ERROR_QUIET)
  string(REGEX MATCH "SONAME +([^\n ]+)" _m "${_hb_dump}")
  set(_hb_soname "${CMAKE_MATCH_1}")
  if(NOT _hb_soname)
    set(_hb_soname "libpython${HB_PY_VERSION}.so.1.0")
  endif()
  set(_hb_stdlib "")
  foreach(d "${HB_PY_LIBDIR}/python${HB_PY_VERSION}" "/usr/lib/python${HB_PY_VERSION}")
    if(NOT _hb_stdlib AND EXISTS "${d}/os.py")
      set(_hb_stdlib "${d}")
    endif()
  endforeach()
  if(NOT _hb_stdlib)
    message(FATAL_ERROR "HB_INSTALL_PYTHON_RUNTIME: no standard library (os.py) under "
      "${HB_PY_LIBDIR}/python${HB_PY_VERSION}; turn the option off to use the system's Python")
  endif()
  install(FILES "${_hb_pyreal}" DESTINATION ${HB_PY_HOME_DEST}/lib RENAME "${_hb_soname}")
  # The standard library without its tests, GUI and build-time files; compiled files are kept
  # (an unprivileged user cannot write __pycache__ there, so they save every start a compile).
  install(DIRECTORY "${_hb_stdlib}" DESTINATION ${HB_PY_HOME_DEST}/lib USE_SOURCE_PERMISSIONS
    PATTERN "test" EXCLUDE PATTERN "idle_test" EXCLUDE PATTERN "idlelib" EXCLUDE
    PATTERN "tkinter" EXCLUDE PATTERN "_tkinter*" EXCLUDE PATTERN "turtledemo" EXCLUDE
    PATTERN "ensurepip" EXCLUDE
    PATTERN "config-*" EXCLUDE PATTERN "site-packages" EXCLUDE
    PATTERN "*.opt-1.pyc" EXCLUDE PATTERN "*.opt-2.pyc" EXCLUDE)
  install(DIRECTORY DESTINATION ${HB_PY_HOME_DEST}/lib/python${HB_PY_VERSION}/site-packages)
  set_target_properties(hornbeam-uring PROPERTIES
    INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}/hornbeam-uring/python/lib")
else()
  set_target_properties(hornbeam-uring PROPERTIES INSTALL_RPATH "${HB_PY_LIBDIR}")
endif()
