#!/usr/bin/env bash
# The cross-validations of the recipe, every fold side by side on one GPU, on a machine with no network that gets a
# copy of the working tree and the two parts bench/gpu_pack.py makes, one after the other (see there):
#   bash bench/gpu_crossval.sh part1   # keeps the scans where the machine keeps files, installs Hydra's wheels
#   bash bench/gpu_crossval.sh part2   # keeps the photos, trains every fold at once, writes the fold tables to $OUT
# Settings (environment): SWEEPS, e.g. "photo_folds:0,1,2,3,4,5 both_folds:0,1,2,3,4" (the default); SEEDS ("0");
# RUN_LIMIT, seconds each training may take (540); EXTRA, more train.py overrides (e.g. experiment=long);
# FIRST_STAGE_ONLY=1 also searches the held-out pages again without the second stage (a table more);
# WALDO_GPU_DATA, where the parts are kept (/root/waldo_gpu); OUT, where the tables go.
set -euo pipefail
KEEP=${WALDO_GPU_DATA:-/root/waldo_gpu}
part=${1:?part1 or part2}
SWEEPS=${SWEEPS:-photo_folds:0,1,2,3,4,5 both_folds:0,1,2,3,4}
mkdir -p "$KEEP"
cp -r ".gpu_pack/$part/." "$KEEP/"
if [ "$part" = part1 ]; then
    python3 -m pip install -q --no-deps --no-index "$KEEP"/wheels/*.whl
    echo "part1 kept in $KEEP: $(ls "$KEEP/data")"
    exit 0
fi
for name in waldo waldo-dm waldo-photos; do
    [ -d "$KEEP/data/$name" ] || { echo "$KEEP/data/$name: missing; run part1 first, on the same warm machine" >&2; exit 2; }
done
[ -e ../shared ] || ln -s "$KEEP" ../shared  # the configs read ../shared/data/...
OUT=${OUT:?set OUT to the folder for the fold tables}
runs=outputs/gpu_crossval
mkdir -p "$runs/logs"
pids=()
for sweep in $SWEEPS; do
    for fold in $(echo "${sweep#*:}" | tr , ' '); do
        for seed in ${SEEDS:-0}; do
            name="${sweep%%:*}/seed${seed}_fold${fold}"
            # the final validation searches as predict.py does (both stages, its scales): metrics.json holds the answers
            OMP_NUM_THREADS=1 timeout "${RUN_LIMIT:-540}" python3 train.py "data=${sweep%%:*}" "data.fold=$fold" "seed=$seed" \
                trainer=gpu trainer.check_val_every_n_epoch=320 'callbacks.page_validation.scales=[1.0,1.25]' \
                task_name=gpu_crossval "hydra.run.dir=$runs/$name" ${EXTRA:-} \
                > "$runs/logs/${name//\//_}.log" 2>&1 &
            pids+=($!)
        done
    done
done
started=$SECONDS
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
echo "${#pids[@]} trainings in $((SECONDS - started)) s, $failed failed or cut at RUN_LIMIT"
for sweep in $SWEEPS; do
    folder="$runs/${sweep%%:*}"
    python3 -m waldo_pl.crossval "$folder" > "$OUT/${sweep%%:*}.md" 2>&1 || true
    if [ -n "${FIRST_STAGE_ONLY:-}" ]; then
        { echo; echo "First stage alone:"; echo; python3 -m waldo_pl.crossval "$folder" --scales 1 1.25 --first-stage-only; } \
            >> "$OUT/${sweep%%:*}.md" 2>&1 || true
    fi
    cat "$OUT/${sweep%%:*}.md"
done
# every held-out answer of every sweep, pooled, for the bundled model's calibration (waldo-export --calibration)
python3 -m waldo_pl.crossval "$runs" --calibrate "$OUT/calibration.json" > "$OUT/all.md" 2>&1 || true
tail -n 30 "$OUT/all.md"
tar czf "$OUT/runs.tgz" $(find "$runs" -name metrics.json -o -name config.yaml -o -name '*.log' | sort)
