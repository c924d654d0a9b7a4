"""The second stage: a small classifier that looks at a window around each of the first stage's best spots and
re-ranks them. Its pieces live with the stage of the pipeline they belong to; this is where they are listed.

    spec          second_stage/spec.py     SecondStage: its network, how it re-ranks and calibrates, checked
    training      second_stage/training.py mine the first stage's spots, fit, store (train.py, waldo-second-stage)
    windows       data/spot_windows.py     the window cut around a spot, sized by its box
    stream        data/spot_stream.py      windows of Waldos, look-alikes and decoys, drawn on the fly
    network       models/spot_net.py       SpotNet, from scratch (second_stage.backbone=spotnet)
                  models/lite_spot_net.py  LiteSpotNet: ImageNet's EfficientNet-Lite0 (backbone=efficientnet_lite0)
    module        models/spot_module.py    the LightningModule that fits it
    file          models/checkpoint.py     how a checkpoint or model file stores it, read as data
    re-ranking    inference/rerank.py      its scores and the answer's confidence in the search
    calibration   calibration.py           Platt scaling (fitted by waldo-crossval, composed by waldo-export)
"""
