# make install: both libraries, both headers and the pkg-config files.
#
#   $(PREFIX)/lib/libcllm_threaded.so.X.Y.Z   SONAME libcllm_threaded.so.X
#   $(PREFIX)/lib/libcllm_threaded.so.X -> .so.X.Y.Z, libcllm_threaded.so -> .so.X
#   $(PREFIX)/lib/libcllm_threaded.a
#   (the same four for libcllm_training_threaded)
#   $(PREFIX)/include/: every header of include/
#   $(PREFIX)/lib/pkgconfig/cllm-threaded.pc          dynamic: -L... -lcllm_threaded
#   $(PREFIX)/lib/pkgconfig/cllm-threaded-static.pc   static: the archive by its path + system libs
#   (and cllm-training-threaded.pc, cllm-training-threaded-static.pc)
#
# The installed libraries carry no debug tables (strip --strip-debug: the
# archive 35 -> 16 MB, the shared library 9.7 -> 1.5 MB); KEEP_DEBUG=1 keeps them.
# An install into /usr/local or /usr as root runs ldconfig; with another
# PREFIX the program needs -Wl,-rpath,<libdir> or LD_LIBRARY_PATH (README).

# VERSION and MAJOR: the Makefile.
KEEP_DEBUG ?= 0
STRIP      ?= strip
LDCONFIG   ?= ldconfig
INSTALL_LIBS := libcllm_threaded libcllm_training_threaded
PC_FILES   := cllm-threaded cllm-threaded-static cllm-training-threaded cllm-training-threaded-static
PC_SED     := -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@NATIVE_LIBS@|$(NATIVE_LIBS)|g' \
              -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g'

.PHONY: install install-tree install-check
install: libs $(LIB_SO) $(DROPIN_SO)
	@test -n "$(VERSION)" || { echo "install: no version found in Cargo.toml"; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	@set -e; d=$(DESTDIR)$(PREFIX)/lib; for l in $(INSTALL_LIBS); do \
	  install -m 644 $(RELEASE)/$$l.a $$d/$$l.a; \
	  install -m 755 $(RELEASE)/$$l.so $$d/$$l.so.$(VERSION); \
	  if [ "$(KEEP_DEBUG)" != 1 ]; then $(STRIP) --strip-debug $$d/$$l.a $$d/$$l.so.$(VERSION); fi; \
	  ln -sf $$l.so.$(VERSION) $$d/$$l.so.$(MAJOR); \
	  ln -sf $$l.so.$(MAJOR) $$d/$$l.so; \
	  echo "installed $$d/$$l.a, $$l.so.$(VERSION) (+ .so.$(MAJOR), .so)"; \
	done
	install -m 644 $(wildcard include/*.h) $(DESTDIR)$(PREFIX)/include/
	@set -e; for pc in $(PC_FILES); do \
	  sed $(PC_SED) $$pc.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc; done
	@# Into the system's own library directories, the loader's cache is updated
	@# so that dynamically linked programs run at once.
	@if [ -z "$(DESTDIR)" ] && { [ "$(PREFIX)" = /usr/local ] || [ "$(PREFIX)" = /usr ]; } \
	    && [ "$$(id -u)" = 0 ]; then echo "$(LDCONFIG)"; $(LDCONFIG); fi

# A fresh install into build/install-check, used by install-check and mk/examples.mk.
INSTALL_TREE := $(abspath $(BUILD)/install-check)
install-tree:
	rm -rf $(INSTALL_TREE)
	$(MAKE) --no-print-directory install PREFIX=$(INSTALL_TREE) >/dev/null

# Builds programs from the installed files only, the way a user does: the
# flags of `pkg-config --cflags --libs` as they come (for the dynamic build, the
# rpath a user of a non-system PREFIX adds), then runs them and checks what
# they link: the static program needs no libcllm_*.so, the dynamic one records
# the SONAME. The version test also compares CLLM_VERSION_* and cllm_version()
# with Cargo.toml; the drop-in's end-to-end test runs through its two .pc files
# (with the C host model standing for the program's CLLM: its headers and library).
IC_CC   = $(CC) -std=c11 -Wall -Wextra -Werror -Iffi-tests
IC_PC   = PKG_CONFIG_PATH=$(INSTALL_TREE)/lib/pkgconfig pkg-config
IC_DIR  := $(BUILD)/install-check/programs
install-check: install-tree $(HOST_LIB)
	@mkdir -p $(IC_DIR)
	$(IC_CC) -DEXPECTED_VERSION='"$(VERSION)"' ffi-tests/install/test_version.c -o $(IC_DIR)/version-static \
	  $$($(IC_PC) --cflags --libs --static cllm-threaded-static)
	$(IC_CC) -DEXPECTED_VERSION='"$(VERSION)"' ffi-tests/install/test_version.c -o $(IC_DIR)/version-shared \
	  $$($(IC_PC) --cflags --libs cllm-threaded) -Wl,-rpath,$(INSTALL_TREE)/lib
	$(IC_CC) -I$(HOST_DIR) ffi-tests/training/test_dropin.c -o $(IC_DIR)/dropin-static \
	  $$($(IC_PC) --cflags cllm-training-threaded-static) $(HOST_LIB) $$($(IC_PC) --libs --static cllm-training-threaded-static)
	$(IC_CC) -I$(HOST_DIR) ffi-tests/training/test_dropin.c -o $(IC_DIR)/dropin-shared \
	  $$($(IC_PC) --cflags cllm-training-threaded) $(HOST_LIB) -lm $$($(IC_PC) --libs cllm-training-threaded) \
	  -Wl,-rpath,$(INSTALL_TREE)/lib
	@set -e; for p in version dropin; do \
	  if readelf -d $(IC_DIR)/$$p-static | grep -q 'NEEDED.*libcllm'; then \
	    echo "install-check: $$p-static needs a libcllm shared library"; exit 1; fi; done
	@readelf -d $(IC_DIR)/version-shared | grep -q 'NEEDED.*\[libcllm_threaded.so.$(MAJOR)\]' || \
	  { echo "install-check: version-shared does not record libcllm_threaded.so.$(MAJOR)"; exit 1; }
	@readelf -d $(IC_DIR)/dropin-shared | grep -q 'NEEDED.*\[libcllm_training_threaded.so.$(MAJOR)\]' || \
	  { echo "install-check: dropin-shared does not record libcllm_training_threaded.so.$(MAJOR)"; exit 1; }
	ffi-tests/run.sh $(IC_DIR)/version-static $(IC_DIR)/version-shared $(IC_DIR)/dropin-static $(IC_DIR)/dropin-shared

TEST_TARGETS += install-check

# make package-check: `cargo package` with verification for every library
# crate (not part of make test: it rebuilds each crate alone). All are packaged
# in one cargo call, so a crate that depends on another of the workspace is
# verified against the packaged copy of it (cargo's local registry overlay),
# not against crates.io, where none is published yet. --allow-dirty lets it run
# in a working tree with edits; the tarballs are then of that tree.
# Every crate under crates/ whose manifest does not say publish = false (its
# package name, which for crates/object-pool is cllm-object-pool).
PACKAGE_CRATES := $(shell for f in crates/*/Cargo.toml; do grep -q '^publish = false' $$f || \
                    sed -n 's/^name = "\(.*\)"/\1/p' $$f | head -1; done)
# cargo treats a registry's name-version as immutable: it keeps the sources it
# unpacked from its temporary registry (under $CARGO_HOME/registry/src/-<hash>/)
# and the libraries it built from them. Both go before each run, or verification
# builds a previous run's sources (seen: the sphere-pool of an hour earlier,
# without the functions cllm-threaded now calls).
CARGO_HOME_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
.PHONY: package-check
package-check:
	rm -rf target/package-check $(foreach c,$(PACKAGE_CRATES),$(CARGO_HOME_DIR)/registry/src/-*/$(c)-$(VERSION))
	$(CARGO) package --allow-dirty --target-dir target/package-check $(addprefix -p ,$(PACKAGE_CRATES))
	@echo "package-check: $(words $(PACKAGE_CRATES)) crates packaged and verified (target/package-check/package/)"
