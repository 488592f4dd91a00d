"""Bringing runs in from other trackers: TensorBoard event files, MLflow stores and Aim repositories
(`aim-parquet convert`). The top layer: converters write through the SDK (`ImportRun`), and
nothing below imports them."""
