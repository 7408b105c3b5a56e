# The Python module (python/, issue 21): pybind11 and the Python development headers, both from
# Debian (pybind11-dev, python3-dev; scripts/install-deps.sh). WLB_WITH_PYTHON says whether it is
# built.
#
# One interpreter builds the module and runs its tests: Python3_EXECUTABLE, which defaults to
# Debian's /usr/bin/python3 when it exists (its numpy comes from python3-numpy). Without that
# default FindPython would take the first python3 on PATH, which on a developer's machine may be
# a pyenv or conda one without numpy or headers, and the module would not import in the tests.
set(WLB_PYTHON AUTO CACHE STRING
    "Build the Python module: AUTO (when pybind11 and the Python headers are found), ON (required), OFF")
set_property(CACHE WLB_PYTHON PROPERTY STRINGS AUTO ON OFF)

set(WLB_WITH_PYTHON OFF)
set(_wlb_python_why "")
if(WLB_PYTHON STREQUAL "OFF")
  set(_wlb_python_why "WLB_PYTHON=OFF")
else()
  if(NOT Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
    set(Python3_EXECUTABLE /usr/bin/python3 CACHE FILEPATH
        "The Python the module is built for and tested with")
  endif()
  if(Python3_EXECUTABLE STREQUAL "/usr/bin/python3")
    set(_wlb_python_choice "Debian's, the default; -DPython3_EXECUTABLE=... for another")
  else()
    set(_wlb_python_choice "from Python3_EXECUTABLE")
  endif()
  find_package(Python3 3.8 COMPONENTS Interpreter Development.Module)
  if(Python3_FOUND)
    # pybind11's config uses the Python3 found above (its FindPython mode).
    find_package(pybind11 2.6 CONFIG QUIET)
  endif()
  if(NOT Python3_FOUND)
    set(_wlb_python_why "no Python 3 interpreter with development headers (python3-dev)")
  elseif(NOT pybind11_FOUND)
    set(_wlb_python_why "pybind11 not found (pybind11-dev)")
  else()
    set(WLB_WITH_PYTHON ON)
  endif()
  if(NOT WLB_WITH_PYTHON AND WLB_PYTHON STREQUAL "ON")
    message(FATAL_ERROR "WLB_PYTHON=ON but ${_wlb_python_why}. Fix: ${_wlb_fix}, or configure "
                        "with -DWLB_PYTHON=OFF")
  endif()
endif()

if(WLB_WITH_PYTHON)
  message(STATUS "wlbtune: Python module for ${Python3_EXECUTABLE} (${_wlb_python_choice}), "
                 "Python ${Python3_VERSION}, pybind11 ${pybind11_VERSION}")
  # Installed under CMAKE_INSTALL_PREFIX; a user adds it to sys.path (docs/integration.md).
  set(WLB_PYTHON_INSTALL_DIR
      "lib/python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}/site-packages" CACHE STRING
      "Where cmake --install puts the wlbtune package, relative to the prefix")
else()
  message(STATUS "wlbtune: no Python module (${_wlb_python_why}; WLB_PYTHON=${WLB_PYTHON})")
endif()
