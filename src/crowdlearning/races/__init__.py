"""The autonomous race league: scheduled races between model versions, watched live.

- ``schedule.py``: the timetable (a race every ``races_interval_s``), each race's seed and track;
- ``field.py``: which model versions race (the champion, the teams' forks and the most recent
  others) and the grid;
- ``teams.py``: teams of players (create, join, leave; one team per player);
- ``forks.py``: team forks: a version trained only on a team's accepted data, built in the
  background, raced under the team's name, never the champion;
- ``standings.py``: order, gaps to the leader, lap crossings;
- ``runner.py``: one race simulated (all cars rows of one ``RaceSim``), its frames and result;
  ``replay`` re-simulates a finished race from its plan;
- ``records.py``: finished races in the web server's database;
- ``season.py``: points per model, and the players whose data built each model (lineage);
- ``spectators.py``: the spectators of one race (bounded queues) and reactions;
- ``chat.py``: the race chat (limits, blocked words, moderators' deletes and mutes, reports);
  ``chat_relay.py``: the chat shared by the game servers over Redis;
- ``service.py``: the asyncio task that prepares, runs, broadcasts and records races;
- ``schemas.py``: the HTTP answers.

Cars are ghosts: they never collide with each other (``docs/protocol.md``, "Races").
"""
