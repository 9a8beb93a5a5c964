# llhttp is compiled from the C sources Debian's node-llhttp ships; nothing is copied here.
set(HB_LLHTTP_SRC_DIR /usr/share/llhttp CACHE PATH "llhttp C sources (node-llhttp)")
set(HB_LLHTTP_INC_DIR /usr/share/include/llhttp CACHE PATH "llhttp header (node-llhttp)")
if(NOT EXISTS ${HB_LLHTTP_SRC_DIR}/llhttp.c OR NOT EXISTS ${HB_LLHTTP_INC_DIR}/llhttp.h)
  message(FATAL_ERROR "llhttp sources not found in ${HB_LLHTTP_SRC_DIR} / ${HB_LLHTTP_INC_DIR}: "
    "install Debian's node-llhttp (scripts/setup.sh does)")
endif()
add_library(llhttp_static STATIC ${HB_LLHTTP_SRC_DIR}/llhttp.c ${HB_LLHTTP_SRC_DIR}/api.c
            ${HB_LLHTTP_SRC_DIR}/http.c)
target_include_directories(llhttp_static PUBLIC ${HB_LLHTTP_INC_DIR})
set_target_properties(llhttp_static PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_compile_options(llhttp_static PRIVATE -w)
target_compile_definitions(llhttp_static PUBLIC LLHTTP_STRICT_MODE=1)
