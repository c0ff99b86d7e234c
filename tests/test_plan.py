import json

import pytest

from tuning_core.errors import PlanError
from tuning_core.plan import Plan


def test_plan_round_trips_through_json():
    plan = Plan(freezing="lora", lora_rank=16, dropout=0.2, epochs=2.5, extras={"k": [1, 2]})
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert list(json.loads(plan.to_json())) == sorted(plan.to_dict())  # sorted, diffable


def test_validation_lists_every_problem_at_once():
    with pytest.raises(PlanError) as err:
        Plan(learning_rate=-1, epochs=0, freezing="half").validate()
    message = str(err.value)
    assert "learning_rate" in message and "epochs" in message and "freezing" in message


def test_unknown_and_wrong_typed_fields_are_named():
    with pytest.raises(PlanError) as err:
        Plan.from_dict({"learnin_rate": 1e-5, "epochs": "a lot", "batch_size": 8.5})
    message = str(err.value)
    assert "did you mean 'learning_rate'" in message
    assert "epochs must be float" in message
    assert "batch_size must be int" in message


def test_replace_validates():
    plan = Plan()
    assert plan.replace(epochs=5).epochs == 5
    with pytest.raises(PlanError):
        plan.replace(batch_size=0)
    with pytest.raises(PlanError):
        plan.replace(freezing="bottom_k", freeze_layers=0)
