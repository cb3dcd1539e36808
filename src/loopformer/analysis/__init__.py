"""Analysis tools: parameter accounting (more to come: FLOPs, CKA, attention distance)."""

from .params import ParameterCount, count_parameters, format_parameter_table

__all__ = ["ParameterCount", "count_parameters", "format_parameter_table"]
