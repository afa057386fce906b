# make demo: the project's main demo (README). First a Mandelbrot render on
# the sphere pool (the generic C API), then the training demo: the C host
# model trained through the drop-in API on data/corpus (loaded by the corpus
# loader), ending with the line `demo epochs=... speedup=... threads=...`.
.PHONY: demo-mandelbrot demo-train
DEMO_TARGETS := demo-mandelbrot demo-train

# Both demos print the load during their timed runs (ffi-tests/demo/load.h).
$(BUILD)/demo/mandelbrot $(BUILD)/demo/train_demo: ffi-tests/demo/load.h

demo-mandelbrot: $(BUILD)/demo/mandelbrot
	$(BUILD)/demo/mandelbrot

$(BUILD)/demo/train_demo: ffi-tests/demo/train_demo.c $(DROPIN_A) $(HOST_LIB) $(DROPIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(CFLAGS) $< -o $@ $(DROPIN_A) $(HOST_LIB) $(NATIVE_LIBS)

demo-train: $(BUILD)/demo/train_demo
	$(BUILD)/demo/train_demo data/corpus
