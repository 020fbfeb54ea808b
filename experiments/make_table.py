"""Write a generated table to try backprop on data at scale: `rows` samples of `features` numbers and a target.

    python experiments/make_table.py big.csv --rows 1000000          # also .parquet, .feather or .npy

The target is a noisy linear function of the features, y = X·w + 0.1·ε with w ~ N(0, 1) and ε ~ N(0, 1) (seeded),
so `experiments/scale/big.toml` can learn it: its val_loss falls towards 0.01, the noise's variance. CSV is written in
chunks, so memory stays small whatever the size; .npy holds the features and the target as its last column.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CHUNK = 100_000


def chunks(rows: int, features: int, seed: int) -> object:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=features)
    for start in range(0, rows, CHUNK):
        X = rng.normal(size=(min(CHUNK, rows - start), features))
        yield np.c_[X, X @ w + 0.1 * rng.normal(size=len(X))].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="the file to write: .csv, .parquet, .feather or .npy")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [f"x{i}" for i in range(args.features)] + ["y"]
    suffix = args.path.suffix.lower()
    parts = chunks(args.rows, args.features, args.seed)
    if suffix == ".csv":
        with open(args.path, "w") as out:
            out.write(",".join(names) + "\n")
            for part in parts:  # type: ignore[attr-defined]
                np.savetxt(out, part, delimiter=",", fmt="%.7g")
    elif suffix == ".npy":
        np.save(args.path, np.concatenate(list(parts)))  # type: ignore[call-overload]
    elif suffix in (".parquet", ".feather"):
        import pyarrow as pa

        data = np.concatenate(list(parts))  # type: ignore[call-overload]
        table = pa.table({name: data[:, i] for i, name in enumerate(names)})
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, args.path)
        else:
            import pyarrow.feather as feather

            feather.write_feather(table, args.path)
    else:
        raise SystemExit(f"{args.path}: use a .csv, .parquet, .feather or .npy name")
    print(f"wrote {args.path}: {args.rows:,} rows, {args.features} features and the target y")


if __name__ == "__main__":
    main()
