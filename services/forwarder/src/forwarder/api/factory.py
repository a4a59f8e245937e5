"""The one place that picks the API flavor: everything else holds a CakemailApi."""

from __future__ import annotations

from typing import Literal

from forwarder.api.http import HttpTransport
from forwarder.api.interface import CakemailApi
from forwarder.api.v1.client import V1Api
from forwarder.api.v2.client import V2Api, V2Options
from forwarder.resilience.pipeline import ApiPipeline

Flavor = Literal["v1", "v2"]


def create_api(flavor: Flavor, transport: HttpTransport, pipeline: ApiPipeline, v2: V2Options) -> CakemailApi:
    if flavor == "v1":
        return V1Api(transport, pipeline)
    return V2Api(transport, pipeline, v2)
