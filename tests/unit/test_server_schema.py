"""The served graph publishes its input and output as JSON schemas: LangGraph Studio draws its
run form from them and ``langgraph_sdk``'s ``assistants.get_schemas`` returns them."""

from __future__ import annotations

from autosci_graph.server import LabRequest, LabResult, build_server_graph


def test_the_served_graph_has_json_schemas_for_its_request_and_result() -> None:
    graph = build_server_graph().compile()
    request, result = graph.get_input_jsonschema(), graph.get_output_jsonschema()
    assert set(LabRequest.__annotations__) <= set(request["properties"])
    assert "task_dir" in request.get("required", [])  # the one field a request must carry
    assert set(LabResult.__annotations__) <= set(result["properties"])
