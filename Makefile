# fleetvision: `make demo` runs the data engine on the embedded synthetic world; `make test` runs the tests.
# Both create .venv and install everything on first use.

PY ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= runs/demo

.PHONY: demo lint test test-all bench bench-install install clean-demo

# nuscenes-devkit (the reference for the BEV metric cross-check in tests/metrics) declares numpy<2, which our torch,
# OpenCV and onnxruntime pins cannot use; its evaluation code runs on numpy 2, so it is installed without its
# dependencies and the dev extra lists the few it imports (pyquaternion, cachetools, scikit-learn).
# trackeval (the reference for the HOTA / CLEAR / IDF1 cross-check in tests/metrics) declares opencv-python, which
# clashes with opencv-python-headless; its metrics need only numpy and scipy.
DEV_NODEPS := nuscenes-devkit==1.2.0 trackeval==1.3.0

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[dev]'
	$(PYTHON) -m pip install -q --no-deps $(DEV_NODEPS)
	touch $(STAMP)

install: $(STAMP)

# Static checks first (seconds), then the tests. Layering contracts: [tool.importlinter] in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(PYTHON) -m pytest -q

test-all: lint
	$(PYTHON) -m pytest -q -m ''

# ------------------------------------------------------------------------------------------- the demo
# The whole data engine on the embedded synthetic world. Every stage is the public CLI a user would type;
# each stage leaves a marker in $(DEMO)/.stages, so a rerun reuses finished stages (CLEAN=1 starts over).
#   make demo            CPU sizes (13-16 min on 2 quiet cores after the install, see benchmarks/RESULTS.md)
#   make demo FULL=1     larger world and budgets, for a GPU machine
#   make demo SMOKE=1    a miniature (tiny sizes, a few steps: what the test suite runs)
#   NO_REAL=1            skip the optional part on ../shared/data (real dash-cam video, YOLOX-Nano teacher)
RIG := configs/rigs/nuscenes_like_6cam.yaml
D := $(DEMO)/data
S := $(DEMO)/.stages
# The data engine: L (labelled) trains the teacher, L_val (labelled) chooses the pseudo-label score floors, U
# (unlabelled: its ground truth only scores) is auto-labelled, T (test) scores three students trained with the same
# recipe and steps: (A) L only, (B) L + U pseudo-labels, (C) L + U ground truth (the oracle).
# The offline teacher: by default the checkpoint shipped in autolabel/teachers/weights/ (trained on this L with
# `perception fit -c configs/perception/offline_teacher.yaml`, see benchmarks/RESULTS.md); TEACHER=train trains it
# here (4000 steps, class-balanced: 65-75 minutes on 2 cores), TEACHER=PATH uses another checkpoint.
SHIPPED_TEACHER := autolabel/teachers/weights/offline_teacher_rfs.pt
TEACHER ?= $(SHIPPED_TEACHER)
STUDENT_CONFIG := configs/perception/student.yaml
FIT := $(BIN)/perception fit --trainer.max_epochs=1000 --trainer.max_time=null --trainer.num_sanity_val_steps=0 \
       --trainer.enable_progress_bar=false
JOB := -c configs/autolabel/jobs/fleetvision_offline.yaml --no-progress
ifdef FULL
L_CLIPS := 48
VAL_CLIPS := 24
U_CLIPS := 96
TEST_CLIPS := 16
DEPLOY_CLIPS := 16
FRAMES := 40
TEACHER_STEPS := 8000
STUDENT_STEPS := 3000
FIT += --trainer.accelerator=auto
ROBUST_ARGS :=
else ifdef SMOKE
L_CLIPS := 2
VAL_CLIPS := 1
U_CLIPS := 2
TEST_CLIPS := 1
DEPLOY_CLIPS := 1
FRAMES := 6
TEACHER_STEPS := 2
STUDENT_STEPS := 2
FIT += --data.batch_size=2 --data.num_workers=0
QUANTIZE_ARGS := --sensitivity-groups 1
BENCH_ARGS := --min-runs 10 --min-duration-s 0 --warmup-runs 2 --warmup-s 0 --throughput-s 0
ROBUST_ARGS := --severities 2 --max-frames 3
else
L_CLIPS := 12
VAL_CLIPS := 12
U_CLIPS := 24
TEST_CLIPS := 24
DEPLOY_CLIPS := 6
FRAMES := 30
TEACHER_STEPS := 4000
STUDENT_STEPS := 600
endif
# The students are tested on all of T (24 clips: fewer cannot hold B / C, a few trucks move it by 15 points); the INT8
# accuracy check and the robustness table, whose cost grows with the clips, run on T's first DEPLOY_CLIPS clips.
DEPLOY_TEST = $(shell seq -f '$(D)/test/clip_%04g' 0 $$(( $(DEPLOY_CLIPS) - 1 )))
QUANTIZE_ARGS ?=
BENCH_ARGS ?= --min-duration-s 5
# the demo's robustness table: the eight corruptions at the middle severity on the first 10 frames of each test
# clip (about a minute); benchmarks/bench_robustness.py measures all three severities on a larger split
ROBUST_ARGS ?= --severities 2 --max-frames 10
latest = $$(ls -t $(1) | head -1)

ifdef CLEAN
demo: clean-demo
endif

demo: $(S)/report
	@echo "demo report: $(DEMO)/REPORT.md"

$(S)/data: | $(STAMP)
	$(BIN)/perception synth --rig $(RIG) --clips $(L_CLIPS) --frames $(FRAMES) --seed 1 --out $(D)/labelled
	$(BIN)/perception synth --rig $(RIG) --clips $(VAL_CLIPS) --frames $(FRAMES) --seed 4 --out $(D)/labelled_val
	$(BIN)/perception synth --rig $(RIG) --clips $(U_CLIPS) --frames $(FRAMES) --seed 2 --out $(D)/unlabelled
	$(BIN)/perception synth --rig $(RIG) --clips $(TEST_CLIPS) --frames $(FRAMES) --seed 3 --out $(D)/test
	$(BIN)/perception viz $(D)/test/clip_0000 --frame $$(( $(FRAMES) / 2 )) --out $(DEMO)/preview.png
	@mkdir -p $(S) && touch $@

$(S)/teacher: $(S)/data
	@if [ "$(TEACHER)" = train ]; then \
	  $(FIT) -c configs/perception/offline_teacher.yaml --data.train=$(D)/labelled --data.val=$(D)/labelled_val \
	    --trainer.max_steps=$(TEACHER_STEPS) --trainer.default_root_dir=$(DEMO)/teacher && \
	  cp "$(call latest,$(DEMO)/teacher/logs/*/model.pt)" $(DEMO)/teacher.pt && \
	  echo "teacher: trained here ($(TEACHER_STEPS) steps on $(D)/labelled)" > $(DEMO)/teacher.txt; \
	else \
	  cp "$(TEACHER)" $(DEMO)/teacher.pt && \
	  echo "teacher: $(TEACHER) (sha256 $$(sha256sum "$(TEACHER)" | cut -c1-16)), not trained in this run" \
	    | tee $(DEMO)/teacher.txt; \
	fi
	@touch $@

# The offline teacher labels L_val (ground truth known) without floors; per-class score floors are chosen there and
# U is labelled with them. U's ground truth only scores the pseudo-labels (and trains the oracle student).
$(S)/autolabel: $(S)/teacher
	$(BIN)/autolabel $(D)/labelled_val --out $(DEMO)/labels_val $(JOB) --teacher fleetvision:$(DEMO)/teacher.pt
	$(BIN)/autolabel calibrate $(DEMO)/labels_val --gt $(D)/labelled_val --max-range 25 --out $(DEMO)/floors.yaml
	$(BIN)/autolabel $(D)/unlabelled --out $(DEMO)/pseudo $(JOB) -c $(DEMO)/floors.yaml \
	    --teacher fleetvision:$(DEMO)/teacher.pt
	$(BIN)/autolabel eval $(DEMO)/pseudo --gt $(D)/unlabelled --max-range 25 --out $(DEMO)/eval/pseudo_labels.json
	$(BIN)/perception viz $(D)/unlabelled/clip_0000 --labels $(DEMO)/pseudo/clip_0000/labels.json \
	    --frame $$(( $(FRAMES) / 2 )) --out $(DEMO)/pseudo_vs_gt.png
	@touch $@

# Results out to the viewers robotics people use: the auto-labelled clip with its ground truth and pseudo-labels as a
# Rerun recording and a Foxglove MCAP (seconds); with ../shared/data, a real RealSense ROS bag imported as a clip.
$(S)/viewers: $(S)/autolabel
	$(BIN)/perception export rerun $(D)/unlabelled/clip_0000 --labels $(DEMO)/pseudo/clip_0000/labels.json \
	    --out $(DEMO)/viewers/clip_0000.rrd --no-progress
	$(BIN)/perception export foxglove $(D)/unlabelled/clip_0000 --labels $(DEMO)/pseudo/clip_0000/labels.json \
	    --out $(DEMO)/viewers/clip_0000.mcap --no-progress
	@if [ -f ../shared/data/ros/realsense_d435/single_depth_color_640x480.bag ] && [ -z "$(NO_REAL)" ]; then \
	  $(BIN)/perception import rosbag ../shared/data/ros/realsense_d435/single_depth_color_640x480.bag \
	    --base-frame device_0_link --out $(DEMO)/robot/realsense_d435 --overwrite --no-progress && \
	  $(BIN)/perception export rerun $(DEMO)/robot/realsense_d435 --out $(DEMO)/viewers/realsense_d435.rrd --no-progress; \
	else echo "(../shared/data/ros absent: skipping the real ROS bag import)"; fi
	@touch $@

# The three students: same recipe (configs/perception/student.yaml), same steps, tested on T.
STUDENT_TRAIN_labelled_only := '["$(D)/labelled"]'
STUDENT_TRAIN_labelled_plus_pseudo := '["$(D)/labelled", "$(D)/unlabelled"]' \
    --data.train_labels='{"$(D)/unlabelled": "$(DEMO)/pseudo"}'
STUDENT_TRAIN_oracle := '["$(D)/labelled", "$(D)/unlabelled"]'
$(S)/student_%: $(S)/autolabel
	$(FIT) -c $(STUDENT_CONFIG) --data.train=$(STUDENT_TRAIN_$*) --data.val=$(D)/labelled_val \
	    --trainer.limit_val_batches=0 --trainer.max_steps=$(STUDENT_STEPS) --trainer.default_root_dir=$(DEMO)/student_$*
	cp "$(call latest,$(DEMO)/student_$*/logs/*/model.pt)" $(DEMO)/student_$*.pt
	$(BIN)/perception test -c $(STUDENT_CONFIG) --data.test=$(D)/test \
	    --ckpt_path="$(call latest,$(DEMO)/student_$*/checkpoints/last*.ckpt)" \
	    --trainer.default_root_dir=$(DEMO)/student_$*/test --trainer.enable_progress_bar=false
	mkdir -p $(DEMO)/eval && cp "$(call latest,$(DEMO)/student_$*/test/logs/*/metrics/test_*.json)" $(DEMO)/eval/student_$*.json
	@touch $@

# Every command of every stage must exit 0 (no '-' prefixes; tests/test_demo.py checks). deploy bench --exit-zero:
# here a latency over the budget is a figure of the report (PASS/FAIL in its table), not a failed stage.
# --bake-rig: the deployed model's view transform is evaluated once for the demo rig (constant gathers; the runtime
# refuses clips of another rig); the eager PyTorch row of deploy bench is the dynamic model as trained.
$(S)/deploy: $(S)/student_labelled_only $(S)/student_labelled_plus_pseudo $(S)/student_oracle
	$(BIN)/deploy export $(DEMO)/student_labelled_plus_pseudo.pt --out $(DEMO)/deploy/student.onnx \
	    --budget configs/deploy/rate_20hz.yaml --bake-rig
	$(BIN)/deploy parity $(DEMO)/deploy/student.onnx $(DEMO)/student_labelled_plus_pseudo.pt --clip $(D)/test/clip_0000 \
	    --json $(DEMO)/deploy/parity.json
	$(BIN)/deploy quantize $(DEMO)/deploy/student.onnx --calib $(D)/labelled --eval $(DEPLOY_TEST) $(QUANTIZE_ARGS) --no-progress
	$(BIN)/deploy bench $(DEMO)/deploy/student.onnx $(DEMO)/deploy/student.int8.onnx --checkpoint $(DEMO)/student_labelled_plus_pseudo.pt \
	    --clip $(D)/test/clip_0000 --budget configs/deploy/rate_20hz.yaml $(BENCH_ARGS) --out $(DEMO)/bench --stem bench \
	    --exit-zero
	$(BIN)/deploy run $(DEMO)/deploy/student.int8.onnx --clip $(D)/test/clip_0000 --rate 20 --realtime \
	    --out $(DEMO)/run --video $(DEMO)/run/annotated.mp4 --no-progress
	@touch $@

# Robustness: the student under the eight RoboBEV corruptions (perception robustness), and the deployed model replayed
# with a camera that dies 0.3 s into the clip (deploy run --fault), scored against the clip's labels over time.
$(S)/robustness: $(S)/deploy
	$(BIN)/perception robustness $(DEMO)/student_labelled_plus_pseudo.pt --data $(DEPLOY_TEST) --out $(DEMO)/robustness $(ROBUST_ARGS) \
	    --no-progress
	$(BIN)/deploy run $(DEMO)/deploy/student.int8.onnx --clip $(D)/test/clip_0000 --rate 20 --realtime \
	    --fault dead:front_left@0.3 --quality-window 0.3 --out $(DEMO)/run_fault --no-progress
	@touch $@

$(S)/report: $(S)/deploy $(S)/viewers $(S)/robustness
	@if [ -d ../shared/data/udacity_dashcam ] && [ -z "$(NO_REAL)" ]; then \
	  $(BIN)/autolabel ../shared/data/udacity_dashcam/solidWhiteRight.mp4 --out $(DEMO)/dashcam --preview --no-progress \
	    -c configs/autolabel/jobs/yolox_nano_driving.yaml --teacher ../shared/data/models/yolox_nano_coco/yolox_nano.onnx; \
	else echo "(../shared/data absent: skipping the real dash-cam part)"; fi
	$(PYTHON) benchmarks/demo_report.py $(DEMO)
	@touch $@

clean-demo:
	rm -rf $(DEMO)

# trackers/supervision/trackeval declare opencv-python, which clashes with opencv-python-headless: install them
# without their dependencies and add what they need by hand.
BENCH_NODEPS := trackers==2.6.1 supervision==0.31.2 trackeval==1.3.0
BENCH_DEPS := av defusedxml 'pyDeprecate<0.14' requests rich tabulate

bench-install: $(STAMP)
	$(PYTHON) -m pip install -q -e '.[dev,bench]' $(BENCH_DEPS)
	$(PYTHON) -m pip install -q --no-deps $(BENCH_NODEPS)

bench: bench-install
	for script in benchmarks/bench_*.py; do echo "== $$script"; \
	  case $$script in \
	    benchmarks/bench_robustness.py) echo "needs two trained checkpoints: see benchmarks/RESULTS.md (Robustness)"; \
	      continue;; \
	    benchmarks/bench_refine_grid.py) echo "needs a teacher and labelled splits: see its docstring"; continue;; \
	    benchmarks/bench_offline_teacher.py|benchmarks/bench_cpu_precision.py) \
	      echo "needs a folder of clips: see its docstring (RESULTS.md has the command)"; continue;; \
	  esac; \
	  $(PYTHON) $$script || exit 1; done
