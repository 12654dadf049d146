"""Conversion with Microsoft Olive: the precision choice and its routes, the plan and its config,
the worker process, its log and progress, calibration text."""
