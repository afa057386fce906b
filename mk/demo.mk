# make demo: the project's main demo (README). The Mandelbrot render shows the
# sphere pool from C; the training demo (issue 4) is added after it.
.PHONY: demo demo-mandelbrot
DEMO_TARGETS := demo-mandelbrot

demo-mandelbrot: $(BUILD)/demo/mandelbrot
	$(BUILD)/demo/mandelbrot
