# Runs at `cmake --install` time (install(SCRIPT)): writes the files that name install paths,
# so that they follow --prefix and DESTDIR chosen then rather than at configure time.
# Inputs (set by packaging/CMakeLists.txt through install(CODE)): ORDERD_PACKAGING_DIR, ORDERD_EXTRA_LIBS,
# ORDERD_STAGE (a build folder for the filled-in files), ORDERD_VERSION, ORDERD_BINDIR, ORDERD_SYSCONFDIR, ORDERD_DATADIR, ORDERD_LIBDIR, ORDERD_INCLUDEDIR.
function(orderd_abs out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

orderd_abs(BINDIR "${ORDERD_BINDIR}")
orderd_abs(SYSCONFDIR "${ORDERD_SYSCONFDIR}")
orderd_abs(DATADIR "${ORDERD_DATADIR}")
set(DOCDIR "${DATADIR}/doc/orderd")
set(VERSION "${ORDERD_VERSION}")
set(LIBDIR "${ORDERD_LIBDIR}")
set(INCLUDEDIR "${ORDERD_INCLUDEDIR}")
set(EXTRA_LIBS "${ORDERD_EXTRA_LIBS}")
# From <libdir>/pkgconfig back to the prefix: one ".." per component, plus one for pkgconfig.
string(REGEX REPLACE "[^/]+" ".." PC_UP "${ORDERD_LIBDIR}/pkgconfig")

set(stage "${ORDERD_STAGE}")
configure_file("${ORDERD_PACKAGING_DIR}/orderd.service.in" "${stage}/orderd.service" @ONLY)
configure_file("${ORDERD_PACKAGING_DIR}/orderd-runtime.pc.in" "${stage}/orderd-runtime.pc" @ONLY)
# The unit goes where systemd looks for units of this prefix (/usr/lib/systemd/system,
# /usr/local/lib/systemd/system, ...).
file(INSTALL "${stage}/orderd.service" DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
file(INSTALL "${stage}/orderd-runtime.pc" DESTINATION "${CMAKE_INSTALL_PREFIX}/${ORDERD_LIBDIR}/pkgconfig")
