#!/bin/bash
# Written by `ngdbench slurm`: one array task per shard of the sweep. Task K trains the runs of
# shard K/4 and writes one result file per run into /shared/results; finished runs are
# skipped, so resubmitting the script (or one task) completes an interrupted sweep.
#SBATCH --job-name=ngdbench
#SBATCH --array=1-4
#SBATCH --partition=gpu
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --gpus-per-task=1
#SBATCH --time=12:00:00
#SBATCH --chdir=/home/me/ngdbench
#SBATCH --output=/shared/results/slurm-logs/%x-%A_%a.out
set -euo pipefail
exec /home/me/ngdbench/build/ngdbench run experiments/kfac/step-time-mlp.json 'experiments/my specs/b.json' \
  --out /shared/results --shard "${SLURM_ARRAY_TASK_ID}/4" --device cuda --threads 8 --scale paper --filter 'kfac|sgd lr=0.1$' --data-root /shared/data --quiet
