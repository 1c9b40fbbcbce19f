"""The book's experiments: what the chapters (``notebooks/NN_*.ipynb``) run, one module per topic.

The library's core (``distances``, ``mining``, ``losses``, ``attention``, ``synthesis``, ``models``, ``data``,
``evaluation``, ``train``, ``viz``, ``diagnostics``) never imports this package; the experiments build on it and
train through :func:`dmlbook.train.run`. Nothing is imported here: import the module you need, e.g.
``from dmlbook.experiments import tracking``.

* :mod:`~dmlbook.experiments.tracking`: runs watched by a :class:`~dmlbook.train.TrainingTracker`, one per
  mining method (:func:`~dmlbook.experiments.tracking.train_methods`), and readers of the tracked curves
  (chapters 1, 2 and 6).
* :mod:`~dmlbook.experiments.mining_weights`: what a mining method does to one batch, on one scale for every
  method (chapter 2).
* :mod:`~dmlbook.experiments.outliers`: label noise and foreign outliers, training under them, and class-aware
  attention scored as a detector (chapter 3).
* :mod:`~dmlbook.experiments.report`: mean ± std tables of a loss comparison over seeds, the raw-input baseline
  and the measured comparison (chapter 4, ``benchmarks/train_losses.py``, ``benchmarks/end_to_end.py``).
* :mod:`~dmlbook.experiments.demo`: ``python -m dmlbook demo``, a one-minute smoke demo.
* :mod:`~dmlbook.experiments.synthesis_study`: every wrapped loss trained with and without symmetrical synthesis,
  and what the synthesis mines during training (chapter 5).
* :mod:`~dmlbook.experiments.remote_sensing`: the ablation of cross-entropy, lifted structure and class centres
  for scene classification (chapter 7).
* :mod:`~dmlbook.experiments.lesions`: DeMAL-CNN's ablation on cached encoder outputs, diagnostic measures and
  attention against lesion masks (chapter 8).
* :mod:`~dmlbook.experiments.spoken_words`: word recognition across speakers with and without a metric term,
  adaptation and enrolment (chapter 9).
"""
