"""A bulk result reads as its summary and the items that did not go."""

from __future__ import annotations

from cli.output import describe_result


def test_a_bulk_result_is_summarized_with_its_failed_and_skipped_items():
    result = {
        "success": True,
        "statusCode": 200,
        "message": "Processed 3 item(s): 1 assigned, 0 already assigned, 1 skipped, 1 failed",
        "summary": {"assigned": 1, "alreadyAssigned": 0, "skipped": 1, "failed": 1},
        "items": [
            {"status": "assigned", "statusCode": 200, "deviceIdentifier": "SN-1", "deviceId": 1},
            {
                "status": "skipped",
                "statusCode": 404,
                "deviceIdentifier": "SN-2",
                "errorCode": "DEVICE_NOT_FOUND",
                "errorMessages": ["device 'SN-2' not found"],
            },
            {
                "status": "failed",
                "statusCode": 400,
                "errorCode": "INVALID_REQUEST",
                "errorMessages": ["expected a JSON object, got str"],
            },
        ],
    }
    assert describe_result(result, request_id="b-1").splitlines() == [
        "Processed 3 item(s): 1 assigned, 0 already assigned, 1 skipped, 1 failed",
        "  item 1 SN-2: skipped 404 DEVICE_NOT_FOUND: device 'SN-2' not found",
        "  item 2: failed 400 INVALID_REQUEST: expected a JSON object, got str",
        "  requestId b-1",
    ]
