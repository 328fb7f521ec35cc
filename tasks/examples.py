"""OpenAPI examples for the compatibility routes: what integrators send and get back."""

from drf_spectacular.utils import OpenApiExample

UPSERT_REQUEST = OpenApiExample(
    "Create or update by your own id",
    request_only=True,
    value={
        "title": "Install dishwasher",
        "start_datetime": "2026-12-01T09:00:00",
        "end_datetime": "2026-12-01T11:00:00",
        "enable_time_window_display": True,
        "time_window_start": 60,
        "customer_first_name": "Ada",
        "customer_last_name": "Lovelace",
        "customer_email": "ada@example.com",
        "customer_mobile_number": "+12125550142",
        "customer_address_line_1": "1 Main St",
        "customer_city": "New York",
        "customer_zipcode": "10001",
        "entities": [{"external_id": "crew-7", "name": "Bob Smith"}],
        "extra_fields": {"order_no": "A-1"},
        "notifications": {"sms": True, "email": True},
    },
)
TASK_RESPONSE = OpenApiExample(
    "The task",
    response_only=True,
    value={
        "id": 41,
        "identifier": "0b8f5c1e-5d0a-4a52-9c1b-2f8f2f4f7e11",
        "external_id": "ORDER-1001",
        "url_safe_id": "q0Zr3mX1b9k2Lp4Qw8TyAa",
        "tracker_url": "https://taskhub.example.com/t/q0Zr3mX1b9k2Lp4Qw8TyAa",
        "title": "Install dishwasher",
        "status": "NOTSTARTED",
        "coarse_status": "created",
        "version": 1,
        "start_datetime": "2026-12-01T14:00:00+00:00",
        "end_datetime": "2026-12-01T16:00:00+00:00",
        "entity_ids": [7],
        "notifications": {"sms": True, "email": True},
        "extra_fields": {"order_no": "A-1"},
    },
)
STATUS_REQUEST = OpenApiExample(
    "On the way, with a note for the customer",
    request_only=True,
    value={
        "type": "ENROUTE",
        "reporter_name": "Bob",
        "extra_fields": {"notes": "10 minutes away", "visible_to_customer": True, "eta_minutes": 10},
    },
)
TRAVTUS_CREATE_REQUEST = OpenApiExample(
    "Travtus example request",
    request_only=True,
    value={"group_external_ref": "group-1", "due_datetime": "2023-11-11 20:00:00", "notes": "Some notes"},
)
TRAVTUS_CREATE_RESPONSE = OpenApiExample(
    "Accepted",
    response_only=True,
    value={"request_id": "5dc8327b-ebcb-4185-a0d0-5a5d40c56ed2", "identifier": "8c1d2f4e-2b7a-4e0c-9a51-3d1f0b6e7c22"},
)
TRAVTUS_UPDATE_REQUEST = OpenApiExample(
    "Mark in progress",
    request_only=True,
    value={"external_ref": "wo-17", "status": "in_progress", "importance": "high"},
)
